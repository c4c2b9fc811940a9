"""Exporting a SUMO network: GeoParquet layers (EPSG:4326) or an OpenDRIVE file.

GeoParquet writes ``edges``, ``lanes``, ``junctions`` and ``signals`` (see
:class:`~roadtwin.maps.network.NetworkFrames`), one file each; OpenDRIVE goes through
``netconvert --opendrive-output``. Every file is written atomically; an ``ATTRIBUTION.md`` beside the
network (a zone's ODbL notice) is copied along.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from roadtwin._io import atomic_path
from roadtwin.errors import NetworkError
from roadtwin.maps._netconvert import run_netconvert
from roadtwin.maps._paths import base_name
from roadtwin.maps.network import load_net, network_frames

__all__ = ["EXPORT_FORMATS", "export_network"]

EXPORT_FORMATS = ("geoparquet", "opendrive")
"""The formats :func:`export_network` writes."""


def export_network(net_file: Path, *, fmt: Literal["geoparquet", "opendrive"], out: Path) -> list[Path]:
    """Export a network's lanes, junctions and signals.

    Parameters
    ----------
    net_file
        The SUMO network (geo-referenced for GeoParquet).
    fmt
        ``"geoparquet"``: ``edges.parquet``, ``lanes.parquet``, ``junctions.parquet`` and
        ``signals.parquet`` in ``out``; ``"opendrive"``: ``<name>.xodr`` in ``out`` (or ``out`` itself
        when it ends in ``.xodr``).
    out
        The output folder (created when missing).

    Returns
    -------
    list[Path]
        The files written.

    Raises
    ------
    NetworkError
        The network is missing or malformed, lacks a projection (GeoParquet), or netconvert rejects it.
    """
    net_file = Path(net_file)
    out = Path(out)
    if fmt == "geoparquet":
        written = _geoparquet(net_file, out)
        folder = out
    elif fmt == "opendrive":
        written = [_opendrive(net_file, out)]
        folder = written[0].parent
    else:
        raise NetworkError(path=None, field="format", expected=" or ".join(EXPORT_FORMATS), got=fmt)
    notice = net_file.parent / "ATTRIBUTION.md"
    if notice.is_file():
        with atomic_path(folder / "ATTRIBUTION.md") as tmp:
            shutil.copyfile(notice, tmp)
        written.append(folder / "ATTRIBUTION.md")
    return written


def _geoparquet(net_file: Path, out: Path) -> list[Path]:
    frames = network_frames(net_file)
    written = []
    for layer in ("edges", "lanes", "junctions", "signals"):
        path = out / f"{layer}.parquet"
        with atomic_path(path) as tmp:
            getattr(frames, layer).to_parquet(tmp, index=False)
        written.append(path)
    return written


def _opendrive(net_file: Path, out: Path) -> Path:
    load_net(net_file)
    target = out if out.suffix == ".xodr" else out / f"{base_name(net_file)}.xodr"
    with atomic_path(target) as tmp:
        run_netconvert(
            ["--sumo-net-file", net_file.resolve(), "--opendrive-output", tmp.resolve()],
            cwd=tmp.parent,
            user_file=net_file,
            expected="a network that netconvert can write as OpenDRIVE",
        )
    return target
