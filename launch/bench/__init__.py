"""Benchmarks that measure graphs of node processes, so they need the launcher and live here
rather than beside the stream code they measure: ``transport`` (igtflow against raw pyzmq) and
``record`` (recorder headroom, lockstep replay). Each has ``run_…`` for the report and ``print_…``
for its table; ``igtflow.report`` saves and prints it."""
