"""Node types that exist only for tests; node processes import them as ``tests.nodes.…``."""
