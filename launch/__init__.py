"""Graph files, validation, the launcher/supervisor and the ``igtflow`` command."""
