"""Names of network files."""

from __future__ import annotations

from pathlib import Path

__all__ = ["base_name"]

_SUFFIXES = (".gz", ".xml", ".net", ".osm", ".xodr")


def base_name(path: Path) -> str:
    """Return a network's name from its file: ``yizhuang.net.xml.gz`` -> ``yizhuang``."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    return name or "network"
