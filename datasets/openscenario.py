"""OpenSCENARIO 1.2 files of situations around automated vehicles, mined from a dataset.

A dataset folder (``datasets/SCHEMA.md``) records every agent of a run. :func:`find_situations`
searches it for three kinds of situation around an automated vehicle (``agent_type == "av"``, the
*ego*):

``red_light``
    The ego drives (at least 3 m/s) within 80 m of the stop line of its lane while the signal link it
    takes at the end of the road shows ``r`` in ``signals.parquet``: from the last lane it holds on
    the edge to the first lane of the next edge it drives on. When the recording ends before the ego
    leaves the edge, every link of that last lane must be red. The moment is the first step of such an
    approach (one per ego and edge).
``cut_in``
    Another vehicle changes lane (between two lanes of one edge) into the ego's lane and lands ahead of
    it with a bumper-to-bumper gap of at most 30 m. The moment is the step of the lane change.
``pedestrian_crossing``
    A pedestrian walks on a crossing (a SUMO crossing edge ``:<junction>_c<n>``) in front of the ego:
    1 to 40 m ahead along the ego's heading and at most 5 m to either side. The moment is the first step
    of each ego and pedestrian pair.

Each situation is replayed from 3 s before its moment to 17 s after it (cut to what the recording
holds), with the ego, the agents that make the situation (the cut-in vehicle, the pedestrian) and up
to 10 other agents within 40 m of the ego at the start; an agent that leaves the recording early stays
at its last recorded state, and agents that arrive later are not replayed.

:func:`write_openscenarios` writes one ``.xosc`` per situation with ``scenariogeneration``: a
``RoadNetwork`` naming the dataset's ``map/network.xodr`` by a path relative to the ``.xosc`` file
(OpenSCENARIO resolves relative paths from the folder of the file that holds them), catalogue-free
``Vehicle`` and ``Pedestrian`` definitions with the recorded dimensions, a ``TeleportAction`` to each
agent's first recorded state and a ``FollowTrajectoryAction`` along a polyline of its recorded states
(``position`` following mode, absolute timing: vertex times are seconds since the scenario's start),
and a stop trigger when the simulation time reaches the situation's length. Every file is checked
against the OpenSCENARIO XSD bundled with scenariogeneration before it replaces anything; an
``index.json`` lists the situations.

Coordinates
-----------
``x``, ``y`` are kept as they are: netconvert writes OpenDRIVE in the SUMO network's coordinates (it
runs with ``offset.disable-normalization``; the ``<header><offset>`` is minus the network's
``netOffset``, i.e. the UTM origin), so a ``WorldPosition`` in the network's metres lies on the same
road of the ``.xodr``. Checked on the Yizhuang zone: the reference lines of all 327 roads start within
0.64 m of the left edge of their SUMO edge, with headings equal to 1e-4 rad, and once the ``.xodr``
is re-imported by netconvert every ego's start position lies within 0.01 m of a lane centre line.
Headings convert from SUMO's angle (0 = north, clockwise, degrees) to OpenDRIVE's (0 = east,
counter-clockwise, radians): ``h = radians(90 - angle)``, wrapped to (-pi, pi]. SUMO reports a
vehicle's front bumper centre; OpenSCENARIO places a vehicle by its reference point, the centre of the
rear axle, which sits :data:`REAR_AXLE_SHARE` of the length behind the front bumper. Pedestrians are
placed by their recorded position (the centre of their bounding box).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from pydantic import Field, field_validator

from roadtwin._io import atomic_path, write_json
from roadtwin.config import StrictModel, load_options
from roadtwin.errors import InputError, require

__all__ = [
    "KINDS",
    "OSC_MINOR_VERSION",
    "REAR_AXLE_SHARE",
    "OpenScenarioOptions",
    "Situation",
    "find_situations",
    "openscenario_command",
    "reference_point",
    "validate_xosc",
    "write_openscenarios",
]

KINDS: tuple[str, ...] = ("red_light", "cut_in", "pedestrian_crossing")
"""The kinds of situation :func:`find_situations` looks for."""

OSC_MINOR_VERSION = 2
"""The files are OpenSCENARIO 1.2 (read by esmini, CARLA's ScenarioRunner and most 1.x tools)."""

REAR_AXLE_SHARE = 0.8
"""Distance from the front bumper to the rear axle, as a share of a vehicle's length."""

# Situation thresholds (see the module docstring).
RED_APPROACH_M = 80.0
RED_MIN_SPEED_MPS = 3.0
CUT_IN_GAP_M = 30.0
PED_AHEAD_M = (1.0, 40.0)
PED_LATERAL_M = 5.0
BEFORE_S, AFTER_S = 3.0, 17.0
NEIGHBOUR_RADIUS_M = 40.0
MAX_NEIGHBOURS = 10

_CROSSING = re.compile(r"^:.+_c\d+$")
_CATEGORY = {"car": "car", "av": "car", "bus": "bus", "truck": "truck"}
_HEIGHT = {"car": 1.5, "av": 1.6, "bus": 3.2, "truck": 3.5, "pedestrian": 1.75}
_MAX_ACCEL = {"car": 2.6, "av": 2.6, "bus": 1.2, "truck": 1.3}
_MAX_DECEL = {"car": 9.0, "av": 9.0, "bus": 7.0, "truck": 7.0}
_TRAJ_COLUMNS = [
    "agent_id", "agent_type", "vtype", "time_s", "x", "y", "heading_deg", "speed_mps", "lane", "length_m",
    "width_m",
]  # fmt: skip


@dataclass(frozen=True)
class Situation:
    """One situation around an automated vehicle.

    Attributes
    ----------
    kind
        One of :data:`KINDS`.
    time_s
        The moment that makes it (simulation s): first red approach step, lane change, pedestrian seen.
    start_s, end_s
        The replayed window (simulation s).
    ego
        The automated vehicle's ``agent_id``.
    actors
        The agents that make the situation (cut-in vehicle, pedestrian; none for a red light).
    neighbours
        Other agents near the ego at ``start_s``, replayed for context.
    details
        Kind-specific figures (``distance_m``, ``tls_id``, ``gap_m``...).
    """

    kind: str
    time_s: float
    start_s: float
    end_s: float
    ego: str
    actors: tuple[str, ...] = ()
    neighbours: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def agents(self) -> tuple[str, ...]:
        """Ego first, then actors, then neighbours."""
        return (self.ego, *self.actors, *self.neighbours)


def reference_point(
    x: np.ndarray, y: np.ndarray, heading_deg: np.ndarray, length_m: np.ndarray, *, vehicle: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert SUMO positions and angles to OpenSCENARIO world positions ``(x, y, h)``.

    Vehicles move from the front bumper to the rear axle (:data:`REAR_AXLE_SHARE` of their length
    back along the heading); pedestrians keep their position. ``h = radians(90 - angle)`` in (-pi, pi].
    """
    h = np.radians(90.0 - np.asarray(heading_deg, dtype="float64"))
    h = np.pi - np.mod(np.pi - h, 2 * np.pi)  # wrap to (-pi, pi]
    back = np.where(vehicle, REAR_AXLE_SHARE * np.asarray(length_m, dtype="float64"), 0.0)
    return np.asarray(x) - back * np.cos(h), np.asarray(y) - back * np.sin(h), h


# --- finding situations ---------------------------------------------------------------------------------


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = [k for k in kinds.split(",") if k.strip()]
    out = tuple(k.strip() for k in kinds)
    for k in out:
        if k not in KINDS:
            raise InputError(path=None, field="kinds", expected="one of " + ", ".join(KINDS), got=k)
    if not out:
        raise InputError(path=None, field="kinds", expected="at least one of " + ", ".join(KINDS), got="")
    return out


def _check_dataset(dataset_dir: str | os.PathLike[str]) -> Path:
    folder = Path(dataset_dir)
    if not (folder / "trajectories.parquet").is_file():
        raise InputError(
            path=folder,
            field=None,
            expected="a dataset folder with trajectories.parquet (roadtwin datasets export)",
        )
    return folder


def _read_parquet(path: Path, columns: list[str], *, filters: list[Any] | None = None) -> pd.DataFrame:
    pq = require("pyarrow.parquet", extra="datasets", package="pyarrow")
    if not path.is_file():
        raise InputError(
            path=path, field=None, expected="this file of the dataset (roadtwin datasets export)"
        )
    try:
        table = pq.read_table(path, columns=columns, filters=filters)
    except Exception as exc:  # pyarrow raises several types for a wrong or damaged file
        raise InputError(
            path=path, field=None, expected=f"Parquet with columns {', '.join(columns)}", got=str(exc)
        ) from None
    return table.to_pandas()


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    """Add the unit vector of the SUMO angle (``ux``, ``uy``: east, north)."""
    a = np.radians(df["heading_deg"].to_numpy(dtype="float64"))
    return df.assign(ux=np.sin(a), uy=np.cos(a))


def _red_light(traj: pd.DataFrame, folder: Path) -> pd.DataFrame:
    av = traj[traj["agent_type"] == "av"]
    if av.empty:
        return pd.DataFrame()
    # The link each ego takes at the end of its current edge: from the last lane it holds on the edge
    # (it may still change lanes before the stop line) to the first lane of the next edge.
    drive = av[~av["lane"].str.startswith(":")].sort_values(["agent_id", "time_s"])
    edge = drive["lane"].str.rsplit("_", n=1).str[0]
    new_run = (edge != edge.groupby(drive["agent_id"]).shift()).cumsum().rename("run")
    runs = drive.groupby(new_run, sort=False).agg(
        agent_id=("agent_id", "first"), first_lane=("lane", "first"), exit_lane=("lane", "last")
    )
    runs["next_lane"] = runs.groupby("agent_id")["first_lane"].shift(-1)
    drive = drive.assign(run=new_run.to_numpy()).merge(
        runs[["exit_lane", "next_lane"]], left_on="run", right_index=True
    )

    stops = _read_parquet(folder / "map" / "stop_lines.parquet", ["lane_id", "x", "y"])
    stops = pd.DataFrame(
        {
            "lane": stops["lane_id"],
            "stop_x": [float(np.mean(v)) for v in stops["x"]],
            "stop_y": [float(np.mean(v)) for v in stops["y"]],
        }
    )
    drive = drive.merge(stops, on="lane")
    drive["distance_m"] = np.hypot(drive["stop_x"] - drive["x"], drive["stop_y"] - drive["y"])
    drive = drive[(drive["distance_m"] <= RED_APPROACH_M) & (drive["speed_mps"] >= RED_MIN_SPEED_MPS)]
    if drive.empty:
        return pd.DataFrame()

    lanes = drive["exit_lane"].unique().tolist()
    sig = _read_parquet(
        folder / "signals.parquet",
        ["time_s", "tls_id", "from_lane", "to_lane", "state"],
        filters=[("from_lane", "in", lanes)],
    )
    sig = sig[sig["time_s"].isin(drive["time_s"].unique())]
    sig["red"] = sig["state"] == "r"
    # Known next lane: that link is red.
    exact = drive.merge(
        sig[sig["red"]][["time_s", "from_lane", "to_lane", "tls_id"]],
        left_on=["time_s", "exit_lane", "next_lane"],
        right_on=["time_s", "from_lane", "to_lane"],
    )
    # Next lane unknown (the recording ends first): every link of the lane is red.
    per_lane = sig.groupby(["time_s", "from_lane"]).agg(all_red=("red", "all"), tls_id=("tls_id", "first"))
    per_lane = per_lane[per_lane["all_red"]].reset_index()
    unknown = drive[drive["next_lane"].isna()].merge(
        per_lane, left_on=["time_s", "exit_lane"], right_on=["time_s", "from_lane"]
    )
    hits = pd.concat([exact, unknown], ignore_index=True).sort_values("time_s")
    hits = hits.drop_duplicates(["agent_id", "run"])
    return pd.DataFrame(
        {
            "time_s": hits["time_s"],
            "ego": hits["agent_id"],
            "actor": None,
            "details": [
                {"lane": ln, "tls_id": t, "distance_m": round(float(d), 2), "speed_mps": round(float(v), 2)}
                for ln, t, d, v in zip(
                    hits["lane"], hits["tls_id"], hits["distance_m"], hits["speed_mps"], strict=True
                )
            ],
        }
    )


def _cut_in(traj: pd.DataFrame) -> pd.DataFrame:
    veh = traj[traj["agent_type"] != "pedestrian"].sort_values(["agent_id", "time_s"])
    prev = veh.groupby("agent_id")["lane"].shift()
    edge = veh["lane"].str.rsplit("_", n=1).str[0]
    prev_edge = prev.str.rsplit("_", n=1).str[0]
    changed = prev.notna() & (prev != veh["lane"]) & (edge == prev_edge) & ~veh["lane"].str.startswith(":")
    cutters = _frame(veh[changed].assign(from_lane=prev[changed]))
    if cutters.empty:
        return pd.DataFrame()
    av = _frame(traj[traj["agent_type"] == "av"])
    pairs = cutters.merge(av, on=["time_s", "lane"], suffixes=("", "_ego"))
    pairs = pairs[pairs["agent_id"] != pairs["agent_id_ego"]]
    ahead = (pairs["x"] - pairs["x_ego"]) * pairs["ux_ego"] + (pairs["y"] - pairs["y_ego"]) * pairs["uy_ego"]
    pairs = pairs.assign(gap_m=ahead - pairs["length_m"])
    pairs = pairs[(pairs["gap_m"] >= 0) & (pairs["gap_m"] <= CUT_IN_GAP_M)].sort_values("time_s")
    pairs = pairs.drop_duplicates(["agent_id_ego", "agent_id"])
    return pd.DataFrame(
        {
            "time_s": pairs["time_s"],
            "ego": pairs["agent_id_ego"],
            "actor": pairs["agent_id"],
            "details": [
                {"from_lane": f, "lane": ln, "gap_m": round(float(g), 2)}
                for f, ln, g in zip(pairs["from_lane"], pairs["lane"], pairs["gap_m"], strict=True)
            ],
        }
    )


def _near_pairs(a: pd.DataFrame, b: pd.DataFrame, *, radius: float) -> pd.DataFrame:
    """Rows of ``a`` and ``b`` at the same time within ``radius`` m, by a grid join (no cross product)."""
    a = a.assign(cx=np.floor(a["x"] / radius).astype("int64"), cy=np.floor(a["y"] / radius).astype("int64"))
    b = b.assign(cx=np.floor(b["x"] / radius).astype("int64"), cy=np.floor(b["y"] / radius).astype("int64"))
    parts = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            shifted = b.assign(cx=b["cx"] + dx, cy=b["cy"] + dy)
            parts.append(a.merge(shifted, on=["time_s", "cx", "cy"], suffixes=("", "_b")))
    out = pd.concat(parts, ignore_index=True)
    return out[np.hypot(out["x_b"] - out["x"], out["y_b"] - out["y"]) <= radius]


def _pedestrian_crossing(traj: pd.DataFrame) -> pd.DataFrame:
    peds = traj[(traj["agent_type"] == "pedestrian") & traj["lane"].str.match(_CROSSING)]
    av = _frame(traj[traj["agent_type"] == "av"])
    if peds.empty or av.empty:
        return pd.DataFrame()
    pairs = _near_pairs(av, peds, radius=PED_AHEAD_M[1])
    dx, dy = pairs["x_b"] - pairs["x"], pairs["y_b"] - pairs["y"]
    ahead = dx * pairs["ux"] + dy * pairs["uy"]
    side = dx * pairs["uy"] - dy * pairs["ux"]
    pairs = pairs.assign(ahead_m=ahead)
    keep = (ahead >= PED_AHEAD_M[0]) & (ahead <= PED_AHEAD_M[1]) & (side.abs() <= PED_LATERAL_M)
    pairs = pairs[keep].sort_values("time_s").drop_duplicates(["agent_id", "agent_id_b"])
    return pd.DataFrame(
        {
            "time_s": pairs["time_s"],
            "ego": pairs["agent_id"],
            "actor": pairs["agent_id_b"],
            "details": [
                {"crossing": c, "ahead_m": round(float(d), 2), "ego_speed_mps": round(float(v), 2)}
                for c, d, v in zip(pairs["lane_b"], pairs["ahead_m"], pairs["speed_mps"], strict=True)
            ],
        }
    )


def find_situations(
    dataset_dir: str | os.PathLike[str],
    *,
    kinds: Sequence[str] = KINDS,
    max_per_kind: int = 3,
) -> list[Situation]:
    """Find situations around automated vehicles in a dataset folder.

    Parameters
    ----------
    dataset_dir
        A dataset (``roadtwin datasets export``): ``trajectories.parquet``, and for ``red_light``
        ``signals.parquet`` and ``map/stop_lines.parquet``.
    kinds
        Kinds to look for (:data:`KINDS`), a sequence or one comma-separated string.
    max_per_kind
        At most this many situations of each kind, the earliest first, one per ego.

    Returns
    -------
    list[Situation]
        Sorted by kind (in the order of ``kinds``), then time.

    Raises
    ------
    InputError
        Not a dataset folder, a missing or unreadable file, an unknown kind or ``max_per_kind < 1``.
    """
    folder = _check_dataset(dataset_dir)
    wanted = _check_kinds(kinds)
    if int(max_per_kind) < 1:
        raise InputError(path=None, field="max_per_kind", expected="an integer >= 1", got=max_per_kind)
    traj = _read_parquet(folder / "trajectories.parquet", _TRAJ_COLUMNS)
    traj["lane"] = traj["lane"].fillna("").astype(str)
    spans = traj.groupby("agent_id")["time_s"].agg(["min", "max"])

    found: list[Situation] = []
    for kind in wanted:
        if kind == "red_light":
            hits = _red_light(traj, folder)
        elif kind == "cut_in":
            hits = _cut_in(traj)
        else:
            hits = _pedestrian_crossing(traj)
        if hits.empty:
            continue
        hits = hits.sort_values(["time_s", "ego"], kind="stable").drop_duplicates("ego")
        n = 0
        for t, ego, actor, details in zip(
            hits["time_s"], hits["ego"], hits["actor"], hits["details"], strict=True
        ):
            actors = (actor,) if isinstance(actor, str) else ()
            start = max(t - BEFORE_S, *(spans.at[a, "min"] for a in (ego, *actors)))
            end = min(t + AFTER_S, spans.at[ego, "max"])
            if end - start < 1.0:
                continue
            neighbours = _neighbours(traj, ego=ego, exclude={ego, *actors}, time_s=start)
            sit = Situation(
                kind=kind, time_s=float(t), start_s=float(start), end_s=float(end), ego=str(ego),
                actors=actors, neighbours=neighbours, details=dict(details),
            )  # fmt: skip
            found.append(sit)
            n += 1
            if n >= max_per_kind:
                break
    return found


def _neighbours(traj: pd.DataFrame, *, ego: str, exclude: set[str], time_s: float) -> tuple[str, ...]:
    now = traj[traj["time_s"] == time_s]
    me = now[now["agent_id"] == ego]
    if me.empty:
        return ()
    d = np.hypot(now["x"] - me["x"].iloc[0], now["y"] - me["y"].iloc[0])
    near = now.assign(d=d)[(d <= NEIGHBOUR_RADIUS_M) & ~now["agent_id"].isin(exclude)]
    return tuple(near.sort_values("d")["agent_id"].head(MAX_NEIGHBOURS).astype(str))


# --- writing OpenSCENARIO ------------------------------------------------------------------------------


def _entity(xosc: Any, name: str, row: pd.Series, *, ego: bool) -> Any:
    kind = str(row["agent_type"])
    length, width = round(float(row["length_m"]), 3), round(float(row["width_m"]), 3)
    height = _HEIGHT.get(kind, 1.5)
    if kind == "pedestrian":
        box = xosc.BoundingBox(width, length, height, 0.0, 0.0, height / 2)
        ped = xosc.Pedestrian(name, 75.0, xosc.PedestrianCategory.pedestrian, box)
        ped.add_property("roadtwin:vtype", str(row["vtype"]))
        ped.add_property("roadtwin:agent_type", kind)
        return ped
    rear = (1 - REAR_AXLE_SHARE) * length  # rear overhang
    wheelbase = max(length - 2 * rear, 0.5)
    # The reference point (rear axle) is ``rear`` ahead of the back: the box centre lies forward of it.
    box = xosc.BoundingBox(width, length, height, round(length / 2 - rear, 3), 0.0, height / 2)
    track = round(width * 0.85, 3)
    front = xosc.Axle(0.5, 0.7, track, round(wheelbase, 3), 0.35)
    back = xosc.Axle(0.0, 0.7, track, 0.0, 0.35)
    category = getattr(xosc.VehicleCategory, _CATEGORY.get(kind, "car"))
    veh = xosc.Vehicle(
        name, category, box, front, back, max_speed=70.0, max_acceleration=_MAX_ACCEL.get(kind, 2.6),
        max_deceleration=_MAX_DECEL.get(kind, 9.0),
    )  # fmt: skip
    veh.add_property("roadtwin:vtype", str(row["vtype"]))
    veh.add_property("roadtwin:agent_type", kind)
    if ego:
        veh.add_property("roadtwin:role", "ego")
        veh.add_property("automated", "true")
    return veh


def _scenario(xosc: Any, sit: Situation, states: pd.DataFrame, *, road_file: str) -> Any:
    entities = xosc.Entities()
    init = xosc.Init()
    act = xosc.Act(f"replay_{sit.kind}", xosc.ValueTrigger(
        "start", 0, xosc.ConditionEdge.none, xosc.SimulationTimeCondition(0, xosc.Rule.greaterOrEqual)
    ))  # fmt: skip
    for name in sit.agents:
        rows = states[states["agent_id"] == name]
        if rows.empty:
            continue
        first = rows.iloc[0]
        entities.add_scenario_object(name, _entity(xosc, name, first, ego=name == sit.ego))
        positions = [xosc.WorldPosition(round(float(x), 3), round(float(y), 3), 0.0, round(float(h), 5)) for x, y, h in zip(
            rows["ox"], rows["oy"], rows["oh"], strict=True
        )]  # fmt: skip
        init.add_init_action(name, xosc.TeleportAction(positions[0]))
        if len(positions) < 2:
            continue
        times = [round(float(t) - sit.start_s, 3) for t in rows["time_s"]]
        trajectory = xosc.Trajectory(f"{name}_recorded", False)
        trajectory.add_shape(xosc.Polyline(times, positions))
        follow = xosc.FollowTrajectoryAction(
            trajectory, xosc.FollowingMode.position, xosc.ReferenceContext.absolute, 1, 0
        )
        event = xosc.Event(f"{name}_replay", xosc.Priority.override)
        event.add_action(f"{name}_follow", follow)
        event.add_trigger(xosc.ValueTrigger(
            f"{name}_start", 0, xosc.ConditionEdge.none, xosc.SimulationTimeCondition(0, xosc.Rule.greaterOrEqual)
        ))  # fmt: skip
        maneuver = xosc.Maneuver(f"{name}_maneuver")
        maneuver.add_event(event)
        group = xosc.ManeuverGroup(f"{name}_group")
        group.add_actor(name)
        group.add_maneuver(maneuver)
        act.add_maneuver_group(group)
    stop = xosc.ValueTrigger(
        "situation_end", 0, xosc.ConditionEdge.rising,
        xosc.SimulationTimeCondition(round(sit.end_s - sit.start_s, 3), xosc.Rule.greaterOrEqual), "stop",
    )  # fmt: skip
    story = xosc.Story(f"{sit.kind}_story")
    story.add_act(act)
    board = xosc.StoryBoard(init, stop)
    board.add_story(story)
    return xosc.Scenario(
        f"RoadTwin {sit.kind} around {sit.ego} at t={sit.time_s:g} s", "RoadTwin", xosc.ParameterDeclarations(),
        entities, board, xosc.RoadNetwork(roadfile=road_file), xosc.Catalog(), osc_minor_version=OSC_MINOR_VERSION,
    )  # fmt: skip


@functools.cache
def _schema(minor: int) -> Any:
    """The OpenSCENARIO 1.``minor`` XSD bundled with scenariogeneration (what its ``validate_schema`` reads).

    lxml checks it about 100 times faster than ``validate_schema`` (xmlschema, pure Python): 3 ms
    against 0.4 s for a 20 s replay with ten agents.
    """
    from lxml import etree

    reader = require("scenariogeneration.xosc.xosc_reader", extra="datasets", package="scenariogeneration")
    name = "3_1" if minor == 3 else str(minor)
    return etree.XMLSchema(
        etree.parse(Path(reader.__file__).parents[2] / "schemas" / f"OpenSCENARIO_1_{name}.xsd")
    )


def validate_xosc(path: str | os.PathLike[str]) -> None:
    """Check ``path`` against the bundled OpenSCENARIO 1.x XSD; raise ``ValueError`` naming the first error."""
    from lxml import etree

    tree = etree.parse(os.fspath(path))
    header = tree.find("FileHeader")
    if header is None or header.get("revMajor") != "1" or header.get("revMinor") not in ("0", "1", "2", "3"):
        raise ValueError(f"{path}: not an OpenSCENARIO 1.0-1.3 file (FileHeader revMajor/revMinor)")
    minor = int(header.get("revMinor"))
    schema = _schema(minor)
    if not schema.validate(tree):
        err = schema.error_log.last_error
        raise ValueError(f"{path}: not valid OpenSCENARIO 1.{minor}: line {err.line}: {err.message}")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_openscenarios(
    dataset_dir: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    kinds: Sequence[str] = KINDS,
    max_per_kind: int = 3,
) -> list[Path]:
    """Write one OpenSCENARIO 1.2 file per situation found in a dataset, and an ``index.json``.

    Parameters
    ----------
    dataset_dir
        A dataset folder with ``map/network.xodr`` (see :func:`find_situations` for the rest).
    out
        Output folder (default ``dataset_dir/openscenario``).
    kinds, max_per_kind
        As in :func:`find_situations`.

    Returns
    -------
    list[Path]
        The ``.xosc`` files written (``index.json`` lies beside them).

    Raises
    ------
    InputError
        As in :func:`find_situations`, or ``map/network.xodr`` is missing.
    ValueError
        A written file failed schema validation (a bug; nothing is left under its name).
    """
    xosc = require("scenariogeneration.xosc", extra="datasets", package="scenariogeneration")
    folder = _check_dataset(dataset_dir)
    xodr = folder / "map" / "network.xodr"
    if not xodr.is_file():
        raise InputError(
            path=xodr, field=None, expected="the dataset's OpenDRIVE map (roadtwin datasets export)"
        )
    situations = find_situations(folder, kinds=kinds, max_per_kind=max_per_kind)
    out_dir = Path(out) if out is not None else folder / "openscenario"
    out_dir.mkdir(parents=True, exist_ok=True)
    road_file = Path(os.path.relpath(xodr.resolve(), out_dir.resolve())).as_posix()

    states = pd.DataFrame()
    if situations:
        names = sorted({a for s in situations for a in s.agents})
        states = _read_parquet(
            folder / "trajectories.parquet", _TRAJ_COLUMNS, filters=[("agent_id", "in", names)]
        )
        ox, oy, oh = reference_point(
            states["x"].to_numpy(), states["y"].to_numpy(), states["heading_deg"].to_numpy(),
            states["length_m"].to_numpy(), vehicle=(states["agent_type"] != "pedestrian").to_numpy(),
        )  # fmt: skip
        states = states.assign(ox=ox, oy=oy, oh=oh).sort_values(["agent_id", "time_s"])

    written: list[Path] = []
    index = []
    for i, sit in enumerate(situations):
        window = states[(states["time_s"] >= sit.start_s) & (states["time_s"] <= sit.end_s)]
        window = window[window["agent_id"].isin(sit.agents)]
        scenario = _scenario(xosc, sit, window, road_file=road_file)
        path = out_dir / f"{i:03d}_{sit.kind}_{_safe(sit.ego)}_{sit.time_s:.0f}.xosc"
        with atomic_path(path) as tmp:
            with contextlib.redirect_stdout(io.StringIO()):
                scenario.write_xml(str(tmp))
            validate_xosc(tmp)
        written.append(path)
        index.append(
            {
                "file": path.name, "kind": sit.kind, "time_s": sit.time_s, "start_s": sit.start_s,
                "end_s": sit.end_s, "ego": sit.ego, "actors": list(sit.actors), "neighbours": list(sit.neighbours),
                "details": sit.details,
            }
        )  # fmt: skip
    write_json(
        out_dir / "index.json",
        {
            "dataset": Path(os.path.relpath(folder.resolve(), out_dir.resolve())).as_posix(),
            "openscenario_version": f"1.{OSC_MINOR_VERSION}",
            "road_network": road_file,
            "kinds": list(_check_kinds(kinds)),
            "situations": index,
        },
    )
    return written


# --- CLI -----------------------------------------------------------------------------------------------


class OpenScenarioOptions(StrictModel):
    """Options of ``roadtwin datasets openscenario`` (also settable in a ``--config`` YAML file)."""

    dataset: Path
    out: Path | None = None
    kinds: list[str] = Field(default_factory=lambda: list(KINDS))
    max_per_kind: int = Field(3, ge=1)

    @field_validator("kinds", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value


def openscenario_command(
    dataset: Annotated[
        Path | None, typer.Argument(help="A dataset folder (roadtwin datasets export).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default DATASET/openscenario).")] = None,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated kinds (red_light,cut_in,pedestrian_crossing).")
    ] = None,
    max_per_kind: Annotated[
        int | None, typer.Option(help="At most this many situations per kind (3).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Write OpenSCENARIO 1.2 files of situations around automated vehicles (red light, cut-in, crossing).

    Each file replays the recorded trajectories on the dataset's map/network.xodr and is checked
    against the OpenSCENARIO schema; index.json lists the situations.
    """
    opts = load_options(OpenScenarioOptions, config=config, dataset=dataset, out=out, kinds=kinds,
                        max_per_kind=max_per_kind)  # fmt: skip
    files = write_openscenarios(opts.dataset, out=opts.out, kinds=opts.kinds, max_per_kind=opts.max_per_kind)
    for path in files:
        typer.echo(str(path))
    folder = files[0].parent if files else (opts.out or opts.dataset / "openscenario")
    typer.echo(f"{len(files)} OpenSCENARIO file(s), index: {folder / 'index.json'}")
