"""The report as one HTML page that opens offline: inline CSS, every picture a base64 PNG, no
script, no font or stylesheet fetched from anywhere."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from igtflow.launch.procedure_report.snapshots import Snapshot

NOT_RECORDED = "not recorded"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
.damaged { background: #fdecea; border: 1px solid #e57373; padding: 0.5em 1em; }
.missing { color: #777; font-style: italic; }
.frames { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.8em; color: #555; }
code, pre { font-size: 0.85em; } pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
.warn { color: #b26a00; } .error { color: #c62828; } .ok { color: #2e7d32; }
"""


@dataclass
class Section:
    """A heading and its HTML body; ``None`` body means the stream was not in the recording."""

    slug: str
    title: str
    body: str | None
    missing: str = NOT_RECORDED


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{e(alt)}">'


def table(header: Sequence[str], rows: Sequence[Sequence[object]], raw: int | None = None) -> str:
    """A table of escaped cells (no header row when ``header`` is empty); column ``raw`` is HTML
    already (a level's coloured span)."""
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{c if i == raw else e(c)}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def key_frames(snapshots: Sequence[Snapshot], start_ns: int) -> str:
    figures = []
    for shot in snapshots:
        caption = f"{(shot.stamp_ns - start_ns) / 1e9:.1f} s · {shot.topic} · {shot.what}"
        figures.append(
            f"<figure>{image(shot.png, caption)}<figcaption>{e(caption)}</figcaption></figure>"
        )
    return f'<div class="frames">{"".join(figures)}</div>'


def utc(stamp_ns: int | None) -> str:
    if stamp_ns is None:
        return "?"
    moment = datetime.fromtimestamp(stamp_ns / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def page(
    title: str,
    facts: Sequence[tuple[str, object]],
    problems: Sequence[str],
    sections: Sequence[Section],
) -> str:
    """The whole page: title, facts about the file, its damage if any, then each section."""
    damage = ""
    if problems:
        items = "".join(f"<li>{e(p)}</li>" for p in problems)
        damage = (
            '<div class="damaged" id="damaged"><strong>The recording is damaged</strong>: this '
            f"report shows what could be read.<ul>{items}</ul></div>"
        )
    contents = " · ".join(f'<a href="#{s.slug}">{e(s.title)}</a>' for s in sections)
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{e(title)}</h1>",
        table([], facts),
        damage,
        f"<p>{contents}</p>",
    ]
    for section in sections:
        body = (
            section.body
            if section.body is not None
            else (f'<p class="missing">{e(section.missing)}</p>')
        )
        parts.append(f'<section id="{section.slug}"><h2>{e(section.title)}</h2>{body}</section>')
    parts.append("</body></html>")
    return "\n".join(parts)
