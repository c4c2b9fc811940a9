"""Reading SUMO networks: validated loading (cached), a summary, and GeoDataFrames in lon/lat.

Coordinates go through sumolib's ``convertXY2LonLat`` (the network's own projection); frames are in
EPSG:4326. Lanes carry SUMO's permission semantics: ``allow`` or ``disallow`` (the shorter one), or
``allow == "all"``.
"""

from __future__ import annotations

import json
import os
import xml.sax
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadtwin.errors import NetworkError, require
from roadtwin.maps._xml import check_root
from roadtwin.toolchain import ensure_sumo

if TYPE_CHECKING:
    import geopandas as gpd
    import sumolib.net

__all__ = ["NetworkFrames", "NetworkSummary", "load_net", "network_frames", "summarize_network"]

_CACHE: OrderedDict[tuple[str, int, int], sumolib.net.Net] = OrderedDict()
_CACHE_SIZE = 4


@dataclass(frozen=True)
class NetworkSummary:
    """Counts of a network: junctions (non-internal), signals, road edges, vehicle lanes, sidewalks, km."""

    junctions: int
    signals: int
    edges: int
    lanes: int
    sidewalks: int
    km: float


@dataclass(frozen=True)
class NetworkFrames:
    """A network's layers as GeoDataFrames in EPSG:4326.

    Attributes
    ----------
    edges
        ``id, from, to, name, type, priority, lanes, speed, length, geometry`` (LineString); speed in m/s,
        length in m.
    lanes
        ``id, edge, index, allow, disallow, speed, length, width, name, geometry`` (LineString); index 0 is
        the sidewalk where the edge has one.
    junctions
        ``id, type, lon, lat, geometry`` (Point).
    signals
        ``id, junction, lon, lat, phases, cycle, program, plan, geometry`` (Point): ``junction`` lists the
        controlled junction ids (comma-separated), ``plan`` is the phases as JSON ``[[state, seconds], ...]``.
    """

    edges: gpd.GeoDataFrame
    lanes: gpd.GeoDataFrame
    junctions: gpd.GeoDataFrame
    signals: gpd.GeoDataFrame


def load_net(path: str | os.PathLike[str]) -> sumolib.net.Net:
    """Read a SUMO network with its signal programs, after checking that it is one.

    Parses are cached by path and modification time; treat the returned object as read-only.

    Parameters
    ----------
    path
        A ``.net.xml`` (or ``.net.xml.gz``) file.

    Returns
    -------
    sumolib.net.Net
        The network (no internal lanes), with ``withPrograms=True``.

    Raises
    ------
    NetworkError
        The file is missing, not XML, not a SUMO network, or has no road edge.
    """
    p = Path(path)
    if not p.is_file():
        raise NetworkError(path=p, field=None, expected="an existing SUMO network file (.net.xml)")
    stat = p.stat()
    key = (str(p.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    check_root(p, tag="net", expected="a SUMO network (<net> root element)")
    ensure_sumo()
    import sumolib.net
    from lxml import etree

    if not hasattr(sumolib.net.NetReader, "_currentProgram"):
        # sumolib 1.28 reads a <param> outside lanes, edges and nodes (as in networks re-imported from
        # OpenDRIVE) through self._currentProgram before any <tlLogic> has set it.
        sumolib.net.NetReader._currentProgram = None
    try:
        net = sumolib.net.readNet(str(p), withPrograms=True)
    except etree.XMLSyntaxError as exc:  # sumolib parses with lxml when it is installed
        message = (exc.msg or "syntax error").split(",")[0]
        raise NetworkError(
            path=p, field=f"line {exc.lineno or 1}", expected=f"well-formed XML ({message})"
        ) from None
    except xml.sax.SAXParseException as exc:
        raise NetworkError(
            path=p, field=f"line {exc.getLineNumber()}", expected=f"well-formed XML ({exc.getMessage()})"
        ) from None
    except KeyError as exc:
        raise NetworkError(
            path=p, field=f"attribute {exc.args[0]!r}", expected="a SUMO network that sumolib can read"
        ) from None
    except (ValueError, IndexError, TypeError, AttributeError) as exc:
        raise NetworkError(
            path=p, field=None, expected="a SUMO network that sumolib can read", got=str(exc)
        ) from None
    if not net.getEdges(withInternal=False):
        raise NetworkError(path=p, field="edge", expected="a network with at least one road edge")
    _CACHE[key] = net
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return net


def summarize_network(path: str | os.PathLike[str]) -> NetworkSummary:
    """Count a network's junctions, signals, road edges, vehicle lanes and sidewalks, and its length."""
    net = load_net(path)
    edges = net.getEdges(withInternal=False)
    lanes = [lane for e in edges for lane in e.getLanes()]
    sidewalks = sum(1 for lane in lanes if lane.getPermissions() == {"pedestrian"})
    return NetworkSummary(
        junctions=len(net.getNodes()),
        signals=len(net.getTrafficLights()),
        edges=len(edges),
        lanes=len(lanes) - sidewalks,
        sidewalks=sidewalks,
        km=round(sum(e.getLength() for e in edges) / 1000.0, 2),
    )


def network_frames(path: str | os.PathLike[str]) -> NetworkFrames:
    """Return the network's edges, lanes, junctions and signals as GeoDataFrames in EPSG:4326.

    Parameters
    ----------
    path
        A geo-referenced SUMO network (its ``<location>`` has a ``projParameter``).

    Returns
    -------
    NetworkFrames
        One GeoDataFrame per layer; see :class:`NetworkFrames` for the columns.

    Raises
    ------
    NetworkError
        The file is not a readable SUMO network, or it has no geo-projection.
    MissingExtraError
        geopandas is not installed (extra ``maps``).
    """
    geopandas = require("geopandas", extra="maps")
    shapely = require("shapely", extra="maps")
    import numpy as np

    net = load_net(path)
    if not net.hasGeoProj():
        raise NetworkError(
            path=path,
            field="location.projParameter",
            expected="a geo-referenced network (a projection is needed for lon/lat)",
        )

    def lonlat(points: list[tuple[float, ...]]) -> np.ndarray:
        xy = np.asarray([p[:2] for p in points], dtype=float).reshape(-1, 2)
        lon, lat = net.convertXY2LonLat(xy[:, 0].copy(), xy[:, 1].copy())
        return np.column_stack([lon, lat])

    def line(points: list[tuple[float, ...]]) -> Any:
        coords = lonlat(points)
        if len(coords) == 1:
            coords = np.vstack([coords, coords])
        return shapely.LineString(coords)

    all_classes = _all_vehicle_classes()
    edge_rows: list[dict[str, Any]] = []
    lane_rows: list[dict[str, Any]] = []
    for e in net.getEdges(withInternal=False):
        lanes = e.getLanes()
        edge_rows.append(
            {
                "id": e.getID(),
                "from": e.getFromNode().getID(),
                "to": e.getToNode().getID(),
                "name": e.getName(),
                "type": e.getType(),
                "priority": e.getPriority(),
                "lanes": len(lanes),
                "speed": max(lane.getSpeed() for lane in lanes),
                "length": e.getLength(),
                "geometry": line(e.getShape()),
            }
        )
        for lane in lanes:
            allow, disallow = _permissions(lane.getPermissions(), all_classes)
            lane_rows.append(
                {
                    "id": lane.getID(),
                    "edge": e.getID(),
                    "index": lane.getIndex(),
                    "allow": allow,
                    "disallow": disallow,
                    "speed": lane.getSpeed(),
                    "length": lane.getLength(),
                    "width": lane.getWidth(),
                    "name": e.getName(),
                    "geometry": line(lane.getShape()),
                }
            )

    nodes = net.getNodes()
    node_ll = lonlat([n.getCoord() for n in nodes])
    junction_rows = [
        {"id": n.getID(), "type": n.getType(), "lon": float(ll[0]), "lat": float(ll[1])}
        for n, ll in zip(nodes, node_ll, strict=True)
    ]
    where = {row["id"]: (row["lon"], row["lat"]) for row in junction_rows}

    signal_rows: list[dict[str, Any]] = []
    for tls in net.getTrafficLights():
        controlled = sorted({conn[0].getEdge().getToNode().getID() for conn in tls.getConnections()})
        points = [where[j] for j in controlled if j in where] or [(float("nan"), float("nan"))]
        programs = tls.getPrograms()
        program_id = sorted(programs)[0] if programs else ""
        phases = programs[program_id].getPhases() if programs else []
        signal_rows.append(
            {
                "id": tls.getID(),
                "junction": ",".join(controlled),
                "lon": float(np.mean([p[0] for p in points])),
                "lat": float(np.mean([p[1] for p in points])),
                "phases": len(phases),
                "cycle": float(sum(ph.duration for ph in phases)),
                "program": program_id,
                "plan": json.dumps([[ph.state, ph.duration] for ph in phases]),
            }
        )

    def frame(rows: list[dict[str, Any]], columns: list[str], *, points: bool = False) -> gpd.GeoDataFrame:
        if points:
            lon, lat = [r["lon"] for r in rows], [r["lat"] for r in rows]
            geometry = geopandas.points_from_xy(lon, lat, crs="EPSG:4326")
            return geopandas.GeoDataFrame(rows, columns=columns, geometry=geometry, crs="EPSG:4326")
        return geopandas.GeoDataFrame(
            rows, columns=[*columns, "geometry"], geometry="geometry", crs="EPSG:4326"
        )

    return NetworkFrames(
        edges=frame(edge_rows, ["id", "from", "to", "name", "type", "priority", "lanes", "speed", "length"]),
        lanes=frame(
            lane_rows,
            ["id", "edge", "index", "allow", "disallow", "speed", "length", "width", "name"],
        ),
        junctions=frame(junction_rows, ["id", "type", "lon", "lat"], points=True),
        signals=frame(
            signal_rows,
            ["id", "junction", "lon", "lat", "phases", "cycle", "program", "plan"],
            points=True,
        ),
    )


def _all_vehicle_classes() -> frozenset[str]:
    from sumolib.net.lane import SUMO_VEHICLE_CLASSES

    return frozenset(SUMO_VEHICLE_CLASSES)


def _permissions(perms: set[str], all_classes: frozenset[str]) -> tuple[str, str]:
    """Return SUMO's ``(allow, disallow)`` pair for a permission set, using the shorter form."""
    if perms >= all_classes:
        return "all", ""
    banned = all_classes - perms
    if len(perms) <= len(banned):
        return " ".join(sorted(perms)), ""
    return "", " ".join(sorted(banned))
