# The two commands: `make demo` (install and run the synthetic case) and `make test`.
# Both create .venv when missing and install exactly what requirements.lock pins, with hashes, so
# every machine runs the versions CI passed on. torch is pinned here and installed first: an open
# range pulls a multi-GB CUDA build, and the CPU build is a local file whose hash differs by machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := pip==26.3
TORCH := torch==2.13.0
LOCK := requirements.lock
# `make lock` resolves with pip-tools rather than uv: pip-tools resolves with pip itself, so it sees
# the same indexes, local wheels and constraints that the install will, and its output installs with
# plain `pip --require-hashes`. `make lock` keeps existing pins where pyproject still allows them;
# `make lock UPGRADE=1` moves every package to its newest allowed release (then run the suite).
PIP_TOOLS := pip-tools==7.7.0
LOCK_VENV := .venv-lock
# Shared libraries the wheels load at import: open3d needs libusb and libgomp, VTK/OpenCV X11/GL;
# VTK renders offscreen (no display) through EGL on Mesa: libegl-mesa0 and libgl1-mesa-dri.
# chromium: the web view's tests and `igtflow bench web` drive Debian's headless Chromium through
# Playwright (its own browser download is not used).
SYSTEM_PACKAGES := libusb-1.0-0 libgomp1 libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libglib2.0-0 libx11-6 libxext6 libxrender1 libxt6 chromium
STAMP := $(VENV)/.installed

.PHONY: demo test test-under-load lint bench install lock system-deps clean

demo: $(STAMP)
	$(BIN)/igtflow demo --duration 20

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

# The suite while one busy process per core competes with it, RUNS times in a row (a shared CI
# machine is never idle): `make test-under-load RUNS=3`.
RUNS ?= 1
test-under-load: $(STAMP)
	$(BIN)/python tools/under_load.py --runs $(RUNS) -- $(MAKE) --no-print-directory test

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/igtflow bench transport

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(LOCK) Makefile
	@$(MAKE) --no-print-directory system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "Could not create $(VENV). On Debian/Ubuntu run: sudo apt-get install -y python3-venv"; exit 1; }
	@$(BIN)/python tools/lock.py check $(LOCK) '$(TORCH)'
	$(BIN)/python -m pip install --quiet '$(PIP)'
	$(BIN)/python -m pip install --quiet '$(TORCH)'
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	@extra="$$($(BIN)/python tools/lock.py extras $(LOCK) '$(TORCH)')"; \
	if [ -n "$$extra" ]; then echo "Removing packages the lock does not pin: $$extra"; \
	  $(BIN)/python -m pip uninstall --quiet -y $$extra; fi
	@# An in-tree build leaves igtflow.egg-info in the root, whose stale entry points would shadow
	@# the installed ones (node types are found through them) for anything run from here.
	rm -rf build igtflow.egg-info
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install --quiet '$(PIP)' '$(PIP_TOOLS)'; }
	@echo '$(TORCH)' > $(LOCK_VENV)/torch.in
	$(LOCK_VENV)/bin/pip-compile --quiet $(if $(UPGRADE),--upgrade) --extra test --generate-hashes \
	  --strip-extras --unsafe-package torch --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml $(LOCK_VENV)/torch.in
	$(LOCK_VENV)/bin/python tools/lock.py stamp $(LOCK) '$(TORCH)'

system-deps:
	@command -v dpkg >/dev/null 2>&1 || { echo "Not a Debian/Ubuntu system: install the equivalents of: $(SYSTEM_PACKAGES)"; exit 0; }; \
	missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "Missing system packages:$$missing"; \
	    echo "Run:  sudo apt-get install -y$$missing   then run make again."; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) $(LOCK_VENV) build dist *.egg-info runs
