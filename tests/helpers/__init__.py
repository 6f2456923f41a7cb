"""Helpers shared by the test files, one module per subject; fixtures stay in ``conftest.py`` and
node types that exist only for tests in ``tests/nodes/``.

- ``graph_runs``: run a graph of real node processes, wait on it, read what its nodes wrote
- ``cli``: ``igtflow`` in a child process, as a user runs it; the repository root
- ``calibration``: the machine calibration every bench report must carry
- ``messages``: one message of every kind, and a field-by-field comparison
- ``frames``: US-like and XA-like frames with known geometry, for the viewers
- ``frame_files``: frame files (PLUS, DICOM, video) written by other libraries or by hand
- ``igtl_peers``: OpenIGTLink peers (a raw client that checks every CRC, a frame server)

Free TCP ports come from ``igtflow.ports.free_port``, as they do for the product.
"""
