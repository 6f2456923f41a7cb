"""The ``igtflow`` subcommands, one module per subject; ``launch/cli.py`` registers them.

Each command only parses its options, calls the layer that does the work and prints what came
back: graphs (validate, nodes), runs (run, replay, demo), recordings (inspect, recover, convert),
bench (``igtflow bench …``) and phantom (``igtflow phantom …``). The option types and the two
consoles every command shares are in ``options`` and ``terminal``.
"""
