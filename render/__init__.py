"""What people look at: OpenIGTLink server and client (3D Slicer, AR headsets), the 2D overlay on
the live image, the 3D scene, and offscreen PNG/MP4 output. Every picture shows its age, and
anything older than the stale limit is drawn as stale (``freshness.py``)."""
