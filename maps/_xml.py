"""Cheap checks of XML inputs before SUMO reads them, so that a bad file fails with one clear line."""

from __future__ import annotations

import gzip
from pathlib import Path

from roadtwin.errors import NetworkError

__all__ = ["check_root"]


def check_root(path: Path, *, tag: str, expected: str, whole: bool = False) -> None:
    """Check that ``path`` is XML whose root element is ``tag``.

    Only the start of the file is read unless ``whole`` is true, which streams the whole file through
    the parser (constant memory) to catch truncated or malformed content further down.

    Raises
    ------
    NetworkError
        Naming the file, the line (for a syntax error) or the root element, and what was expected.
    """
    from lxml import etree

    root: str | None = None
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
            for event, element in etree.iterparse(f, events=("start", "end")):
                if root is None:
                    root = etree.QName(element).localname
                    if not whole or root != tag:
                        break
                if event == "end":
                    element.clear()
                    parent = element.getparent()
                    if parent is not None and parent.getparent() is None:
                        del parent[:-1]  # drop finished children of the root: constant memory
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        message = (exc.msg or "syntax error").split(",")[0]
        raise NetworkError(path=path, field=f"line {line}", expected=f"well-formed XML ({message})") from None
    except (OSError, EOFError) as exc:
        raise NetworkError(path=path, field=None, expected="a readable XML file", got=str(exc)) from None
    if root != tag:
        raise NetworkError(path=path, field="root element", expected=expected, got=f"<{root}>")
