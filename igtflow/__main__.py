"""Lets `python -m igtflow` behave like the `igtflow` command."""

from igtflow.launch.cli import main

main()
