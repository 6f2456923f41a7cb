"""``igtflow report``: one self-contained HTML page that tells how a recorded procedure went.

Latency from capture to each output, registration error, confidence, target shift, the alarms,
a few key frames and what produced the recording (graph, model hashes, versions), each drawn
from the recording alone; a stream the recording lacks says "not recorded".

``reading`` (one pass over the file), ``plots`` (matplotlib, Agg), ``snapshots`` (key frames),
``page`` (HTML) and ``build`` (which goes where).
"""

from igtflow.launch.procedure_report.build import Report, build_report

__all__ = ["Report", "build_report"]
