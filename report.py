"""Self-contained HTML reports: sections of tables and embedded PNG pictures, one file, no internet."""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from roadtwin._io import write_text

__all__ = ["Report", "Section"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC",sans-serif;margin:2rem auto;max-width:1200px;
color:#1d2733;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:1px solid #d8dee6;padding-bottom:.3rem;
margin-top:2rem}.meta{color:#5b6775;font-size:.9rem}table{border-collapse:collapse;margin:.6rem 0}
td,th{border:1px solid #d8dee6;padding:.25rem .6rem;text-align:right}th{background:#f1f4f8}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eef1f5;margin:.4rem 0}
.note{color:#5b6775;font-size:.85rem}footer{margin-top:3rem;color:#5b6775;font-size:.8rem}
"""


@dataclass
class Section:
    """A titled part of a report: optional text, tables and pictures, in that order."""

    title: str
    text: str = ""
    tables: list[tuple[Sequence[str], Sequence[Sequence[object]]]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)

    def add_mapping(
        self, data: Mapping[str, object], *, header: tuple[str, str] = ("metric", "value")
    ) -> None:
        """Add a two-column table from a mapping."""
        self.tables.append((header, [(k, v) for k, v in data.items()]))

    def to_html(self) -> str:
        parts = [f"<h2>{html.escape(self.title)}</h2>"]
        if self.text:
            parts.append(f"<p>{html.escape(self.text)}</p>")
        for header, rows in self.tables:
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        for img in self.images:
            data = base64.b64encode(Path(img).read_bytes()).decode("ascii")
            parts.append(f'<img alt="{html.escape(Path(img).stem)}" src="data:image/png;base64,{data}">')
        return "\n".join(parts)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if value is None:
        return "n/a"
    return str(value)


@dataclass
class Report:
    """An HTML report made of :class:`Section` s, written atomically as one self-contained file."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    footer: str = ""

    def section(self, title: str, text: str = "") -> Section:
        """Append and return a new section."""
        sec = Section(title=title, text=text)
        self.sections.append(sec)
        return sec

    def write(self, path: Path) -> Path:
        """Write the report to ``path`` and return it."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        body = "\n".join(s.to_html() for s in self.sections)
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p class='meta'>{html.escape(self.subtitle)} · generated {stamp}</p>"
            f"{body}<footer>{html.escape(self.footer)}</footer></body></html>\n"
        )
        return write_text(path, page)
