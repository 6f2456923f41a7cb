"""The registration node types: ``register-us`` and ``shift-monitor`` (registered in
pyproject.toml)."""
