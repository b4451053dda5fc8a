"""The index page of a folder of daily reports: ``<out_dir>/index.html`` lists every day
written there (newest first), with links to the day's HTML, Markdown and JSON.

It is rewritten from the folder's contents after each ``basketflow report``, so it lists
the days of earlier runs too, and a day removed by hand drops out at the next run.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> for day in ("2011-09-29", "2011-09-30"):
...     (root / day).mkdir()
...     _ = (root / day / "report.html").write_text("<html></html>")
>>> [d for d, _ in report_days(root)]
['2011-09-30', '2011-09-29']
>>> write_index(root).name
'index.html'
"""

from __future__ import annotations

import html
import re
from pathlib import Path

INDEX = "index.html"
FORMATS = (("html", "report"), ("md", "Markdown"), ("json", "JSON"))
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def report_days(out_dir: Path) -> list[tuple[str, list[str]]]:
    """The days with a report in ``out_dir``, newest first, each with its formats."""
    days = []
    for folder in out_dir.iterdir() if out_dir.is_dir() else ():
        if folder.is_dir() and _DAY.fullmatch(folder.name):
            kinds = [ext for ext, _ in FORMATS if (folder / f"report.{ext}").is_file()]
            if kinds:
                days.append((folder.name, kinds))
    return sorted(days, reverse=True)


def render_index(days: list[tuple[str, list[str]]]) -> str:
    """The index page of ``days`` (as :func:`report_days` lists them)."""
    labels = dict(FORMATS)
    rows = "\n".join(
        f"<li><strong>{html.escape(day)}</strong>: " + " · ".join(
            f'<a href="{html.escape(day)}/report.{ext}">{labels[ext]}</a>' for ext in kinds)
        + "</li>" for day, kinds in days)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Daily reports</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;"
            "line-height:1.6}</style></head>\n<body><h1>Daily reports</h1>\n"
            f"<p>{len(days)} day{'s' if len(days) != 1 else ''}, newest first.</p>\n"
            f"<ul>\n{rows}\n</ul>\n</body></html>\n")


def write_index(out_dir: Path) -> Path:
    """Write ``<out_dir>/index.html`` listing the days reported there; return its path."""
    path = out_dir / INDEX
    tmp = path.with_name(f".{INDEX}.tmp")
    tmp.write_text(render_index(report_days(out_dir)), encoding="utf-8")
    tmp.replace(path)
    return path
