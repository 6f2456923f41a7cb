"""The perception node types: ``segment`` and ``track`` (registered in pyproject.toml)."""
