# The two commands: `make demo` (install and run the synthetic case) and `make test`.
# Both create .venv when missing. torch is pinned first: an open range pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# Shared libraries the wheels load at import: open3d needs libusb and libgomp, VTK/OpenCV X11/GL;
# VTK renders offscreen (no display) through EGL on Mesa: libegl-mesa0 and libgl1-mesa-dri.
SYSTEM_PACKAGES := libusb-1.0-0 libgomp1 libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libglib2.0-0 libx11-6 libxext6 libxrender1 libxt6
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install system-deps clean

demo: $(STAMP)
	$(BIN)/igtflow demo --duration 10

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/igtflow bench transport

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "Could not create $(VENV). On Debian/Ubuntu run: sudo apt-get install -y python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

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
	rm -rf $(VENV) build dist *.egg-info runs
