"""Map layers of a dataset: lanes, lane boundaries, crosswalks and stop lines, read from a SUMO network.

The network XML is read once with lxml (sumolib's reader drops the crossings and walking areas the
dataset needs); every geometry is built in network coordinates with shapely's vectorised functions
and converted to lon/lat in one call through the network's own projection (sumolib).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadtwin.errors import NetworkError, require

if TYPE_CHECKING:
    import geopandas as gpd
    import numpy as np

__all__ = ["MAP_LAYERS", "NetXml", "map_layers", "read_net_xml", "signal_links"]

#: The GeoParquet layers :func:`map_layers` returns, in the order they are written.
MAP_LAYERS = ("lanes", "lane_boundaries", "crosswalks", "stop_lines")

#: SUMO's default lane width (m) when a lane has no ``width`` attribute.
DEFAULT_LANE_WIDTH = 3.2


@dataclass
class NetXml:
    """What the dataset needs from a ``.net.xml``: projection, lanes, connections, junction types."""

    path: Path
    net_offset: tuple[float, float]
    proj: str
    lanes: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, str]] = field(default_factory=list)
    junction_types: dict[str, str] = field(default_factory=dict)


def read_net_xml(path: str | Path) -> NetXml:
    """Read the location, lanes (crossings and walking areas included), connections and junction types.

    Raises
    ------
    NetworkError
        The file is missing or has no geo-projection.
    """
    from lxml import etree

    p = Path(path)
    if not p.is_file():
        raise NetworkError(path=p, field=None, expected="an existing SUMO network file (.net.xml)")
    out: NetXml | None = None
    lanes: list[dict[str, Any]] = []
    connections: list[dict[str, str]] = []
    junctions: dict[str, str] = {}
    edge: dict[str, str] = {}
    for event, el in etree.iterparse(str(p), events=("start", "end")):
        tag = el.tag
        if event == "start":
            if tag == "edge":
                edge = dict(el.attrib)
            continue
        if tag == "location":
            dx, dy = (float(v) for v in el.get("netOffset", "0,0").split(","))
            out = NetXml(path=p, net_offset=(dx, dy), proj=el.get("projParameter", "!"))
        elif tag == "lane" and edge:
            a = el.attrib
            lanes.append(
                {
                    "lane_id": a["id"],
                    "edge_id": edge["id"],
                    "function": edge.get("function", "normal"),
                    "to_junction": edge.get("to", ""),
                    "speed_mps": float(a.get("speed", "nan")),
                    "width_m": float(a.get("width", DEFAULT_LANE_WIDTH)),
                    "length_m": float(a.get("length", "nan")),
                    "allow": a.get("allow", ""),
                    "disallow": a.get("disallow", ""),
                    "shape": a.get("shape", ""),
                }
            )
        elif tag == "edge":
            edge = {}
        elif tag == "junction":
            junctions[el.get("id")] = el.get("type", "")
        elif tag == "connection":
            connections.append(dict(el.attrib))
        if event == "end" and tag in ("edge", "junction", "connection", "tlLogic"):
            el.clear()
    if out is None or out.proj in ("!", ""):
        raise NetworkError(
            path=p,
            field="location.projParameter",
            expected="a geo-referenced network (a projection is needed for lon/lat)",
        )
    out.lanes, out.connections, out.junction_types = lanes, connections, junctions
    return out


def signal_links(net: NetXml) -> dict[str, dict[int, tuple[str | None, str | None]]]:
    """Return ``{tls_id: {link_index: (from_lane, to_lane)}}`` from the network's connections."""
    links: dict[str, dict[int, tuple[str | None, str | None]]] = {}
    for c in net.connections:
        tl = c.get("tl")
        if tl is None or "linkIndex" not in c:
            continue
        index = int(c["linkIndex"])
        per = links.setdefault(tl, {})
        if index not in per:
            per[index] = (f"{c['from']}_{c['fromLane']}", f"{c['to']}_{c['toLane']}")
    return links


def _kind(lane: dict[str, Any]) -> str:
    if lane["function"] in ("crossing", "walkingarea"):
        return str(lane["function"])
    return "sidewalk" if lane["allow"] == "pedestrian" else "driving"


def _points(shape: str) -> list[tuple[float, float]]:
    pts = [tuple(float(v) for v in p.split(",")[:2]) for p in shape.split()]
    if len(pts) == 1:
        pts = pts * 2
    return pts  # type: ignore[return-value]


_CROSSING = re.compile(r"^:(.*)_c\d+$")


def map_layers(net: NetXml) -> dict[str, gpd.GeoDataFrame]:
    """Return the dataset's map layers (:data:`MAP_LAYERS`) as GeoDataFrames in EPSG:4326.

    Every layer also has ``x``, ``y`` columns: the geometry's vertices in network coordinates.
    """
    geopandas = require("geopandas", extra="datasets")
    shapely = require("shapely", extra="datasets")
    import numpy as np

    lanes = [lane for lane in net.lanes if lane["function"] != "internal" and lane["shape"]]
    lines_arr = np.asarray([shapely.LineString(_points(lane["shape"])) for lane in lanes], dtype=object)
    kinds = [_kind(lane) for lane in lanes]

    lane_rows = {
        "lane_id": [lane["lane_id"] for lane in lanes],
        "edge_id": [lane["edge_id"] for lane in lanes],
        "kind": kinds,
        "speed_mps": [lane["speed_mps"] for lane in lanes],
        "width_m": [lane["width_m"] for lane in lanes],
        "length_m": [lane["length_m"] for lane in lanes],
        "allow": [lane["allow"] or ("" if lane["disallow"] else "all") for lane in lanes],
        "disallow": [lane["disallow"] for lane in lanes],
    }

    # Boundaries of driving lanes and sidewalks: the centre line offset by half the width each side.
    road = np.array([k in ("driving", "sidewalk") for k in kinds])
    half = np.array([lane["width_m"] / 2 for lane in lanes])[road]
    centre = lines_arr[road]
    road_ids = np.array(lane_rows["lane_id"], dtype=object)[road]
    left = shapely.offset_curve(centre, half)
    right = shapely.offset_curve(centre, -half)
    boundaries = {
        "lane_id": [*road_ids, *road_ids],
        "side": ["left"] * len(road_ids) + ["right"] * len(road_ids),
    }
    boundary_lines = np.concatenate([left, right])

    # Crosswalks: SUMO's crossing edges (one lane each) at the junctions.
    cross = [i for i, k in enumerate(kinds) if k == "crossing"]
    crosswalks = {
        "crosswalk_id": [lanes[i]["edge_id"] for i in cross],
        "junction_id": [_junction_of(lanes[i]["edge_id"]) for i in cross],
        "width_m": [lanes[i]["width_m"] for i in cross],
    }
    cross_lines = lines_arr[cross] if cross else np.empty(0, dtype=object)

    # Stop lines: across the end of every vehicle lane that has a connection into a junction.
    tls_of: dict[str, str | None] = {}
    for c in net.connections:
        if c.get("from", "").startswith(":"):
            continue
        lane_id = f"{c['from']}_{c['fromLane']}"
        if c.get("tl") or lane_id not in tls_of:
            tls_of[lane_id] = c.get("tl")
    stop_idx = [
        i
        for i, lane in enumerate(lanes)
        if kinds[i] == "driving" and lane["lane_id"] in tls_of and lane["function"] == "normal"
    ]
    stop_lines = {
        "lane_id": [lanes[i]["lane_id"] for i in stop_idx],
        "junction_id": [lanes[i]["to_junction"] for i in stop_idx],
        "tls_id": [tls_of[lanes[i]["lane_id"]] for i in stop_idx],
    }
    stop_geoms = _stop_segments(
        [_points(lanes[i]["shape"]) for i in stop_idx], [lanes[i]["width_m"] for i in stop_idx]
    )

    to_lonlat = _projector(net)
    return {
        "lanes": _frame(geopandas, shapely, lane_rows, lines_arr, to_lonlat),
        "lane_boundaries": _frame(geopandas, shapely, boundaries, boundary_lines, to_lonlat),
        "crosswalks": _frame(geopandas, shapely, crosswalks, cross_lines, to_lonlat),
        "stop_lines": _frame(geopandas, shapely, stop_lines, stop_geoms, to_lonlat),
    }


def _junction_of(crossing_edge: str) -> str:
    m = _CROSSING.match(crossing_edge)
    return m.group(1) if m else crossing_edge.lstrip(":")


def _stop_segments(shapes: list[list[tuple[float, float]]], widths: list[float]) -> np.ndarray:
    """A segment as wide as the lane, square to its last piece, at its end."""
    import numpy as np
    import shapely

    if not shapes:
        return np.empty(0, dtype=object)
    end = np.array([s[-1] for s in shapes], dtype=float)
    before = np.array([s[-2] for s in shapes], dtype=float)
    d = end - before
    norm = np.hypot(d[:, 0], d[:, 1])
    norm[norm == 0] = 1.0
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / norm[:, None] * (np.asarray(widths)[:, None] / 2)
    coords = np.stack([end + normal, end - normal], axis=1)
    return np.asarray(shapely.linestrings(coords), dtype=object)


def _projector(net: NetXml) -> Any:
    """Return ``f(x, y) -> (lon, lat)`` for network coordinates (vectorised, pyproj)."""
    pyproj = require("pyproj", extra="datasets")

    transformer = pyproj.Transformer.from_proj(pyproj.Proj(net.proj), "EPSG:4326", always_xy=True)
    dx, dy = net.net_offset

    def convert(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transformer.transform(x - dx, y - dy)

    return convert


def _frame(
    geopandas: Any, shapely: Any, columns: dict[str, list[Any]], lines: np.ndarray, to_lonlat: Any
) -> gpd.GeoDataFrame:
    import numpy as np
    import pandas as pd

    lines = np.asarray(lines, dtype=object)
    frame = pd.DataFrame(columns)
    counts = shapely.get_num_coordinates(lines) if len(lines) else np.zeros(0, dtype=int)
    coords = shapely.get_coordinates(lines) if len(lines) else np.zeros((0, 2))
    lon, lat = to_lonlat(coords[:, 0], coords[:, 1])
    cuts = np.cumsum(counts)[:-1]
    xs, ys = np.split(np.round(coords[:, 0], 3), cuts), np.split(np.round(coords[:, 1], 3), cuts)
    lls = np.split(np.column_stack([lon, lat]), cuts)
    # An offset that collapses (a lane shorter than its width) has no geometry: null, never dropped.
    geometry = [shapely.LineString(ll) if len(ll) >= 2 else None for ll in lls] if len(lines) else []
    frame["x"] = [a.tolist() for a in xs] if len(lines) else pd.Series([], dtype=object)
    frame["y"] = [a.tolist() for a in ys] if len(lines) else pd.Series([], dtype=object)
    return geopandas.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")
