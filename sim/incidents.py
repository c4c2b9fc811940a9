"""Incidents: lanes blocked or a road closed from t1 to t2, written as a SUMO additional file.

Two native SUMO mechanisms, so that the runner needs no per-step Python:

- **Road closed** (``lanes: all``, or every vehicle lane listed): a ``rerouter`` with a
  ``closingReroute`` interval, built by SUMO's ``generateRerouters.py``, which places the rerouter on
  the upstream edges where a detour still exists. Vehicles whose route crosses the closed edge take
  the detour there; vehicles that cannot wait in front of it until it reopens (pedestrians may still
  use the sidewalk). Vehicles inserted while the road is closed need ``--ignore-route-errors``;
  trips that would start on the closed road itself are dropped by SUMO (never inserted).
- **Lanes blocked** (some lanes): a stopped *incident vehicle* (a crash or a broken-down car, vType
  :data:`INCIDENT_TYPE`, :data:`INCIDENT_LENGTH` m long, no tripinfo record) stands on each blocked
  lane ``before_end`` metres (default 50) short of the edge's end, i.e. in the approach to the next
  junction, from t1 to t2; traffic changes lanes around it and merges back behind it. Near the stop
  line it takes the lane's discharge away; mid-block on a signalised arterial a lane blockage costs
  little, because the remaining lanes still outrun the signal's green. SUMO's ``closingLaneReroute``
  is not used: connections are per lane, so closing a lane cuts every turn that enters or leaves the
  road only through it, stranding those vehicles for the whole interval.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from roadtwin._io import write_text
from roadtwin.toolchain import run_tool, tool

__all__ = ["INCIDENT_LENGTH", "INCIDENT_TYPE", "Closure", "needs_ignore_route_errors", "write_closures"]

INCIDENT_TYPE = "incident"
INCIDENT_LENGTH = 10.0


@dataclass(frozen=True)
class Closure:
    """One incident on one edge.

    Attributes
    ----------
    edge
        The edge id.
    lanes
        Blocked lane indices (SUMO's: 0 is the rightmost lane, a sidewalk where the road has one),
        or ``None`` when the whole road is closed.
    begin, end
        Closing time and reopening time, in s.
    before_end
        Distance in m from a lane blockage to the downstream end of the edge.
    """

    edge: str
    lanes: tuple[int, ...] | None
    begin: float
    end: float
    before_end: float = 50.0


def needs_ignore_route_errors(closures: Sequence[Closure]) -> bool:
    """Return whether SUMO needs ``--ignore-route-errors`` (any road is closed as a whole)."""
    return any(c.lanes is None for c in closures)


def _t(value: float) -> str:
    return f"{value:g}"


def _road_closure(net_file: Path, closure: Closure, *, ident: str, work: Path) -> list[ET.Element]:
    out = work / f"{ident}.add.xml"
    run_tool(
        [
            tool("generateRerouters.py"),
            "-n", net_file,
            "-o", out,
            "-x", closure.edge,
            "-i", ident,
            "-b", _t(closure.begin),
            "-e", _t(closure.end),
            "--allow", "authority,pedestrian",
        ],
        what=f"generateRerouters.py for closing {closure.edge}",
        cwd=work,
    )  # fmt: skip
    return [el for el in ET.parse(out).getroot() if el.tag == "rerouter"]


def _lane_blocks(closure: Closure, *, ident: str, edge_length: float) -> list[ET.Element]:
    length = min(INCIDENT_LENGTH, max(edge_length - 2.0, 1.0))
    end_pos = min(max(edge_length - closure.before_end, length), edge_length - 1.0)
    start_pos = max(0.0, end_pos - length)
    elements = []
    for lane in closure.lanes or ():
        veh = ET.Element(
            "vehicle",
            {
                "id": f"{ident}.lane{lane}",
                "type": INCIDENT_TYPE,
                "depart": _t(closure.begin),
                "departLane": str(lane),
                "departPos": f"{end_pos:.2f}",
                "departSpeed": "0",
                "arrivalPos": f"{min(edge_length, end_pos + 1.0):.2f}",
            },
        )
        ET.SubElement(veh, "route", {"edges": closure.edge})
        ET.SubElement(
            veh,
            "stop",
            {
                "lane": f"{closure.edge}_{lane}",
                "startPos": f"{start_pos:.2f}",
                "endPos": f"{end_pos:.2f}",
                "until": _t(closure.end),
            },
        )
        elements.append(veh)
    return elements


def write_closures(
    path: str | os.PathLike[str],
    *,
    net_file: str | os.PathLike[str],
    closures: Sequence[Closure],
    edge_lengths: dict[str, float],
) -> Path:
    """Write the incidents as one SUMO additional file (rerouters, incident vType and vehicles).

    Parameters
    ----------
    path
        Output ``.add.xml`` (written atomically).
    net_file
        The network (``generateRerouters.py`` searches it for detours).
    closures
        The incidents, already checked against the network.
    edge_lengths
        Length in m of each closed edge (to place the incident vehicle mid-edge).

    Returns
    -------
    Path
        ``path``.
    """
    root = ET.Element("additional")
    if any(c.lanes is not None for c in closures):
        vtype = ET.SubElement(
            root,
            "vType",
            {
                "id": INCIDENT_TYPE,
                "vClass": "ignoring",
                "length": _t(INCIDENT_LENGTH),
                "color": "red",
                "guiShape": "truck",
            },
        )
        # Not a trip: keep it out of tripinfo (and so out of every per-vehicle metric).
        ET.SubElement(vtype, "param", {"key": "has.tripinfo.device", "value": "false"})
        ET.SubElement(vtype, "param", {"key": "roadtwin.incident", "value": "true"})
    vehicles: list[ET.Element] = []
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".incidents-", dir=out.parent) as tmp:
        for i, closure in enumerate(closures):
            ident = f"incident{i}"
            if closure.lanes is None:
                root.extend(_road_closure(Path(net_file).resolve(), closure, ident=ident, work=Path(tmp)))
            else:
                vehicles.extend(_lane_blocks(closure, ident=ident, edge_length=edge_lengths[closure.edge]))
    # SUMO wants vehicles of an additional file sorted by departure.
    vehicles.sort(key=lambda v: float(v.get("depart", "0")))
    root.extend(vehicles)
    ET.indent(root, space="    ")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    return write_text(out, text)
