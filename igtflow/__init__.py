"""igtflow: a real-time intraoperative guidance pipeline built from small processes."""

__version__ = "0.1.0"
