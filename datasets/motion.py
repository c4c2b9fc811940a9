"""Motion-forecasting samples in the layout of the Waymo Open Motion Dataset (WOMD).

:func:`build_samples` turns a dataset folder (``datasets/SCHEMA.md``) into agent-centric samples: one
sample per (current time, target agent), centred on the target's bounding-box centre at the current
time and rotated so that the target heads along +x. Keys follow WOMD's ``tf.Example`` features
(``state/past/x``, ``roadgraph_samples/xyz``, ``traffic_light_state/current/state``...); shapes and
codes are WOMD's, dtypes are compact (float32, int8/int16/int32). Samples are stored as compressed
``.npz`` shards, every key stacked over the shard's samples; ``index.json`` (written last) lists the
shards, the split, the options, every key's shape and dtype, and the code tables. The full key list
and the conversion rules are in ``datasets/MOTION.md``.

Conversion in short:

- Time: SUMO records every step (usually 1 s); positions, speed and heading (unwrapped) are linearly
  interpolated onto the ``hz`` grid (default 10 Hz), never extrapolated beyond an agent's recorded span
  or across a gap of more than 1.5 recording periods (``valid`` = 0 there).
- Position: WOMD's ``x, y`` is the box centre; SUMO's is the front bumper, so vehicles are moved back by
  half their length along their heading. ``bbox_yaw`` is the math angle (rad, counter-clockwise from
  +x), not SUMO's compass angle.
- Agents: the target is index 0 (``state/tracks_to_predict`` = 1); the others, up to ``max_agents`` in
  all, are those nearest to the target (closest valid point in the window), ties by id.
- Targets: agents valid over the whole window (history and future), up to ``max_targets`` per current
  time, drawn with ``seed``.
- Map: lane centres, lane boundaries and road edges, crosswalks, resampled every
  ``roadgraph_spacing_m`` and cut into pieces of ``points_per_polyline`` points; the ``max_polylines``
  pieces nearest the target are kept.
- Signals: one entry per signalised lane (per link where a lane's links differ: WOMD's arrow states),
  placed at the lane's stop line; the ``max_signals`` nearest the target are kept.

:class:`MotionDataset` (PyTorch) reads the samples back as dicts of tensors.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from pydantic import Field

from roadtwin._io import atomic_path, sha256_file, write_json
from roadtwin.config import StrictModel, load_options
from roadtwin.errors import InputError, require

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "AGENT_TYPES",
    "ROADGRAPH_TYPES",
    "SAMPLES_FORMAT",
    "SIGNAL_STATES",
    "MotionDataset",  # noqa: F822 - built on first access (module __getattr__), so torch stays optional
    "SampleSpec",
    "SamplesOptions",
    "build_samples",
    "read_index",
    "samples_command",
]

#: The ``format`` of ``index.json`` and its version; bumped when a key or a rule changes.
SAMPLES_FORMAT = {"name": "roadtwin-womd-samples", "version": "1.0"}

#: The dataset schema versions (major) this module reads.
_SCHEMA_MAJOR = "1"

#: WOMD ``state/type``: -1 is a padding row.
AGENT_TYPES = {"unset": 0, "vehicle": 1, "pedestrian": 2, "cyclist": 3, "other": 4}

#: WOMD ``roadgraph_samples/type`` (the codes RoadTwin writes are marked in MOTION.md).
ROADGRAPH_TYPES = {
    "LaneCenter-Freeway": 1,
    "LaneCenter-SurfaceStreet": 2,
    "LaneCenter-BikeLane": 3,
    "RoadLine-BrokenSingleWhite": 6,
    "RoadLine-SolidSingleWhite": 7,
    "RoadLine-SolidDoubleWhite": 8,
    "RoadLine-BrokenSingleYellow": 9,
    "RoadLine-BrokenDoubleYellow": 10,
    "RoadLine-SolidSingleYellow": 11,
    "RoadLine-SolidDoubleYellow": 12,
    "RoadLine-PassingDoubleYellow": 13,
    "RoadEdgeBoundary": 15,
    "RoadEdgeMedian": 16,
    "StopSign": 17,
    "Crosswalk": 18,
    "SpeedBump": 19,
}

#: WOMD ``traffic_light_state/*/state``: -1 is invalid (not recorded, or a padding column).
SIGNAL_STATES = {
    "UNKNOWN": 0,
    "ARROW_STOP": 1,
    "ARROW_CAUTION": 2,
    "ARROW_GO": 3,
    "STOP": 4,
    "CAUTION": 5,
    "GO": 6,
    "FLASHING_STOP": 7,
    "FLASHING_CAUTION": 8,
}

# SUMO link state -> WOMD state; ``s`` (stop, then go) reads as a flashing red, ``u`` (red-yellow) as red.
_SUMO_STATE = {"G": 6, "g": 6, "y": 5, "Y": 5, "r": 4, "R": 4, "u": 4, "s": 7, "o": 8, "O": 0}
# A lane whose links show different states at some time has arrow signals: GO -> ARROW_GO and so on.
_ARROW = {6: 3, 5: 2, 4: 1}

_OPTIONAL_MAP_COLUMNS = ("speed_mps", "allow")
_VEHICLES = ("car", "bus", "truck", "av")
_FREEWAY_MPS = 80 / 3.6
_TRAJ_COLUMNS = (
    "agent_id", "agent_type", "time_s", "x", "y", "heading_deg", "speed_mps", "length_m", "width_m",
)  # fmt: skip
_SIGNAL_COLUMNS = ("time_s", "tls_id", "link_index", "from_lane", "state")
_AGENT_FIELDS = ("x", "y", "bbox_yaw", "vel_yaw", "velocity_x", "velocity_y", "speed", "length", "width")
_SIGNAL_FIELDS = ("state", "x", "y", "z", "id", "valid")


@dataclass(frozen=True)
class SampleSpec:
    """Every option of :func:`build_samples` (written into ``index.json``)."""

    history_s: float = 1.0
    future_s: float = 8.0
    hz: int = 10
    max_agents: int = 128
    stride_s: float = 1.0
    max_targets: int = 8
    target_types: tuple[str, ...] | None = None
    max_polylines: int = 256
    points_per_polyline: int = 20
    roadgraph_spacing_m: float = 1.0
    max_signals: int = 16
    samples_per_shard: int = 64
    seed: int = 0

    @property
    def past(self) -> int:
        """History steps before the current one (10 for 1 s at 10 Hz; with the current one, WOMD's 11)."""
        return round(self.history_s * self.hz)

    @property
    def future(self) -> int:
        """Future steps (80 for 8 s at 10 Hz)."""
        return round(self.future_s * self.hz)

    @property
    def stride(self) -> int:
        """Steps between two current times."""
        return max(1, round(self.stride_s * self.hz))


# --- reading the dataset ---------------------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not folder.is_dir() or not path.is_file():
        raise InputError(
            path=folder, field="manifest.json", expected="a dataset folder (roadtwin datasets export)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path=path, field=None, expected="a JSON object") from None
    if not isinstance(manifest, dict):
        raise InputError(path=path, field=None, expected="a JSON object", got=type(manifest).__name__)
    version = str(manifest.get("schema_version", ""))
    if version.split(".")[0] != _SCHEMA_MAJOR:
        raise InputError(
            path=path,
            field="schema_version",
            expected=f"{_SCHEMA_MAJOR}.x",
            got=manifest.get("schema_version"),
        )
    return manifest


def _read_table(path: Path, columns: Sequence[str]) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(path=path, field=None, expected="a Parquet file") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(path=path, field="columns", expected=f"columns {list(columns)}", got=missing)
    table = pq.read_table(path, columns=list(columns))
    import pyarrow as pa

    # Dictionary-encoded strings (as pandas categoricals write them) read as plain strings.
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def _sorted_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Return (codes, names): the rank of each value among the sorted distinct values."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column).combine_chunks()
    names = encoded.dictionary.to_pylist()
    order = np.argsort(np.asarray(names, dtype=object), kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return rank[encoded.indices.to_numpy(zero_copy_only=False)], [names[i] for i in order]


@dataclass
class _Tracks:
    """Every agent's records, sorted by (agent, time), cut into segments without gaps."""

    ids: list[str]
    kind: np.ndarray  # WOMD type per agent
    agent_type: np.ndarray  # the dataset's agent_type per agent
    length: np.ndarray
    width: np.ndarray
    agent: np.ndarray  # per row
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray  # unwrapped within each segment
    speed: np.ndarray
    seg: np.ndarray  # segment id per row
    seg_first: np.ndarray  # first valid tick of each segment
    seg_last: np.ndarray
    seg_agent: np.ndarray
    seg_rows: np.ndarray  # row range per segment: [start, stop)
    t_min: float
    t_max: float
    period: float


def _agent_kind(agent_type: str, vtype: str) -> int:
    if agent_type == "pedestrian":
        return AGENT_TYPES["pedestrian"]
    if "bicycle" in vtype.lower() or "bike" in vtype.lower() or agent_type == "bicycle":
        return AGENT_TYPES["cyclist"]
    if agent_type in _VEHICLES:
        return AGENT_TYPES["vehicle"]
    return AGENT_TYPES["other"]


def _read_tracks(folder: Path, hz: int) -> _Tracks:
    import pyarrow.parquet as pq

    path = folder / "trajectories.parquet"
    if not path.is_file():
        raise InputError(path=folder, field="trajectories.parquet", expected="the dataset's trajectories")
    has_vtype = "vtype" in pq.read_schema(path).names
    table = _read_table(path, [*_TRAJ_COLUMNS, "vtype"] if has_vtype else _TRAJ_COLUMNS)
    if table.num_rows == 0:
        raise InputError(path=path, field=None, expected="at least one trajectory row", got=0)
    agent, ids = _sorted_codes(table["agent_id"])
    t = table["time_s"].to_numpy().astype(np.float64)
    order = np.lexsort((t, agent))
    agent, t = agent[order], t[order]

    def col(name: str) -> np.ndarray:
        return table[name].to_numpy().astype(np.float64)[order]

    x, y, speed = col("x"), col("y"), col("speed_mps")
    length, width = col("length_m"), col("width_m")
    # SUMO's compass angle (0 = north, clockwise, degrees) -> math angle (rad, counter-clockwise from +x).
    yaw = np.radians(90.0 - col("heading_deg"))

    first_row = np.flatnonzero(np.r_[True, agent[1:] != agent[:-1]])
    types = table["agent_type"].to_numpy(zero_copy_only=False)[order][first_row]
    vtypes = table["vtype"].to_numpy(zero_copy_only=False)[order][first_row] if has_vtype else types
    kind = np.array([_agent_kind(str(a), str(v)) for a, v in zip(types, vtypes, strict=True)], np.int8)
    # SUMO reports a vehicle's front bumper; WOMD's box centre lies half a length behind it.
    is_vehicle = kind[agent] != AGENT_TYPES["pedestrian"]
    back = np.where(is_vehicle, length / 2, 0.0)
    x, y = x - back * np.cos(yaw), y - back * np.sin(yaw)

    times = np.unique(t)
    steps = np.diff(times)
    period = float(np.median(steps)) if len(steps) else 1.0 / hz
    new_seg = np.r_[True, (agent[1:] != agent[:-1]) | (np.diff(t) > 1.5 * period + 1e-9)]
    seg = np.cumsum(new_seg) - 1
    starts = np.flatnonzero(new_seg)
    stops = np.r_[starts[1:], len(t)]
    for a, b in zip(starts, stops, strict=True):
        yaw[a:b] = np.unwrap(yaw[a:b])
    seg_first = np.ceil(t[starts] * hz - 1e-6).astype(np.int64)
    seg_last = np.floor(t[stops - 1] * hz + 1e-6).astype(np.int64)
    return _Tracks(
        ids=ids, kind=kind, agent_type=np.asarray(types, dtype=str), length=length[first_row].astype(np.float32),
        width=width[first_row].astype(np.float32), agent=agent, t=t, x=x, y=y, yaw=yaw, speed=speed,
        seg=seg, seg_first=seg_first, seg_last=seg_last, seg_agent=agent[starts],
        seg_rows=np.column_stack([starts, stops]), t_min=float(times[0]), t_max=float(times[-1]),
        period=period,
    )  # fmt: skip


@dataclass
class _Window:
    """Every agent resampled onto the tick grid over ``[tick0, tick0 + n)``: arrays [agents, n]."""

    tick0: int
    agents: np.ndarray  # global agent codes, sorted
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    valid: np.ndarray


def _resample(tracks: _Tracks, tick0: int, tick1: int, hz: int) -> _Window:
    """Linear interpolation of every segment that overlaps ticks ``[tick0, tick1]`` (inclusive)."""
    n = tick1 - tick0 + 1
    segs = np.flatnonzero((tracks.seg_last >= tick0) & (tracks.seg_first <= tick1))
    agents = np.unique(tracks.seg_agent[segs])
    slot = {int(a): i for i, a in enumerate(agents)}
    shape = (len(agents), n)
    x, y, yaw, speed = (np.zeros(shape) for _ in range(4))
    valid = np.zeros(shape, dtype=bool)
    for s in segs:
        a, b = tracks.seg_rows[s]
        lo, hi = max(int(tracks.seg_first[s]), tick0), min(int(tracks.seg_last[s]), tick1)
        ticks = np.arange(lo, hi + 1)
        when = ticks / hz
        t = tracks.t[a:b]
        i, cols = slot[int(tracks.seg_agent[s])], slice(lo - tick0, hi - tick0 + 1)
        x[i, cols] = np.interp(when, t, tracks.x[a:b])
        y[i, cols] = np.interp(when, t, tracks.y[a:b])
        yaw[i, cols] = np.interp(when, t, tracks.yaw[a:b])
        speed[i, cols] = np.interp(when, t, tracks.speed[a:b])
        valid[i, cols] = True
    return _Window(tick0=tick0, agents=agents, x=x, y=y, yaw=yaw, speed=speed, valid=valid)


# --- map -------------------------------------------------------------------------------------------------


@dataclass
class _Roadgraph:
    """Map pieces in network coordinates: points [P, L, 2], dir [P, L, 2], valid [P, L], type/id [P]."""

    points: np.ndarray
    dirs: np.ndarray
    valid: np.ndarray
    type: np.ndarray
    id: np.ndarray
    feature_ids: list[str]
    centre: np.ndarray  # [P, 2], centre of each piece's bounding box
    radius: np.ndarray  # [P], its distance to the piece's farthest point


def _layer(folder: Path, name: str, columns: Sequence[str]) -> dict[str, list[Any]] | None:
    """A map layer's columns as lists; ``None`` when the dataset has no such layer."""
    import pyarrow.parquet as pq

    path = folder / "map" / f"{name}.parquet"
    if not path.is_file():
        return None
    names = pq.read_schema(path).names
    # speed and permissions refine a lane's type; a layer without them still reads.
    return _read_table(path, [c for c in columns if c in names or c not in _OPTIONAL_MAP_COLUMNS]).to_pydict()


def _resample_line(xs: np.ndarray, ys: np.ndarray, spacing: float) -> np.ndarray:
    pts = np.column_stack([np.asarray(xs, float), np.asarray(ys, float)])
    if len(pts) < 2:
        return pts
    d = np.r_[0.0, np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]
    if d[-1] <= 0:
        return pts[:1]
    at = np.linspace(0.0, d[-1], max(2, math.ceil(d[-1] / spacing) + 1))
    return np.column_stack([np.interp(at, d, pts[:, 0]), np.interp(at, d, pts[:, 1])])


def _lane_index(lane_id: str) -> int:
    tail = lane_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _read_roadgraph(folder: Path, opts: SampleSpec) -> _Roadgraph:
    features: list[tuple[str, int, np.ndarray]] = []  # (feature id, type, points)
    lanes = _layer(folder, "lanes", ("lane_id", "edge_id", "kind", "speed_mps", "allow", "x", "y"))
    driving: dict[str, list[int]] = {}
    if lanes is not None:
        for i, lane_id in enumerate(lanes["lane_id"]):
            if lanes["kind"][i] != "driving":
                continue
            driving.setdefault(lanes["edge_id"][i], []).append(_lane_index(lane_id))
            allow = (lanes.get("allow") or [""] * len(lanes["lane_id"]))[i] or ""
            speed = (lanes.get("speed_mps") or [0.0] * len(lanes["lane_id"]))[i] or 0.0
            kind = (
                "LaneCenter-BikeLane"
                if allow.strip() == "bicycle"
                else "LaneCenter-Freeway"
                if speed >= _FREEWAY_MPS and "pedestrian" not in allow
                else "LaneCenter-SurfaceStreet"
            )
            features.append((f"lane:{lane_id}", ROADGRAPH_TYPES[kind], _xy(lanes, i)))
    edge_of = {lid: e for lid, e in zip(lanes["lane_id"], lanes["edge_id"], strict=True)} if lanes else {}
    bounds = _layer(folder, "lane_boundaries", ("lane_id", "side", "x", "y"))
    if bounds is not None:
        for i, lane_id in enumerate(bounds["lane_id"]):
            indices = driving.get(edge_of.get(lane_id, ""), [])
            k, side = _lane_index(lane_id), bounds["side"][i]
            if k not in indices:
                continue  # sidewalks and lanes the lanes layer does not list as driving
            if side == "right" and k == min(indices):
                kind = "RoadEdgeBoundary"  # the kerb
            elif side == "left" and k == max(indices):
                kind = "RoadEdgeMedian"  # towards the opposite direction
            elif side == "left":
                kind = "RoadLine-BrokenSingleWhite"  # between two lanes, drawn once
            else:
                continue
            features.append((f"boundary:{lane_id}:{side}", ROADGRAPH_TYPES[kind], _xy(bounds, i)))
    walks = _layer(folder, "crosswalks", ("crosswalk_id", "x", "y"))
    if walks is not None:
        for i, walk_id in enumerate(walks["crosswalk_id"]):
            features.append((f"crosswalk:{walk_id}", ROADGRAPH_TYPES["Crosswalk"], _xy(walks, i)))
    features.sort(key=lambda f: f[0])

    size = opts.points_per_polyline
    pieces: list[np.ndarray] = []
    piece_dirs: list[np.ndarray] = []
    types: list[int] = []
    ids: list[int] = []
    for fid, (_, code, pts) in enumerate(features):
        line = _resample_line(pts[:, 0], pts[:, 1], opts.roadgraph_spacing_m)
        if len(line) == 0:
            continue
        step = np.diff(line, axis=0)
        norm = np.hypot(step[:, 0], step[:, 1])[:, None]
        d = np.divide(step, norm, out=np.zeros_like(step), where=norm > 0)
        d = np.vstack([d, d[-1:]]) if len(d) else np.zeros((1, 2))
        for a in range(0, len(line), size):
            pieces.append(line[a : a + size])
            piece_dirs.append(d[a : a + size])
            types.append(code)
            ids.append(fid)
    n = len(pieces)
    points = np.zeros((n, size, 2))
    dirs = np.zeros((n, size, 2))
    valid = np.zeros((n, size), dtype=bool)
    for i, (p, d) in enumerate(zip(pieces, piece_dirs, strict=True)):
        points[i, : len(p)], dirs[i, : len(p)], valid[i, : len(p)] = p, d, True
    lo = np.where(valid[..., None], points, np.inf).min(axis=1) if n else np.zeros((0, 2))
    hi = np.where(valid[..., None], points, -np.inf).max(axis=1) if n else np.zeros((0, 2))
    centre = (lo + hi) / 2
    reach = np.hypot(points[..., 0] - centre[:, None, 0], points[..., 1] - centre[:, None, 1])
    radius = np.where(valid, reach, 0.0).max(axis=1) if n else np.zeros(0)
    return _Roadgraph(
        points=points, dirs=dirs, valid=valid, type=np.asarray(types, np.int8),
        id=np.asarray(ids, np.int32), feature_ids=[f[0] for f in features], centre=centre, radius=radius,
    )  # fmt: skip


def _xy(layer: dict[str, list[Any]], i: int) -> np.ndarray:
    return np.column_stack([np.asarray(layer["x"][i], float), np.asarray(layer["y"][i], float)])


# --- signals ---------------------------------------------------------------------------------------------


@dataclass
class _Signals:
    """Signal entries: stop point [E, 2], feature id [E], WOMD state [E, times] (-1 before the first)."""

    xy: np.ndarray
    id: np.ndarray
    times: np.ndarray
    state: np.ndarray
    period: float


def _read_signals(folder: Path, roadgraph: _Roadgraph, period: float) -> _Signals:
    empty = _Signals(np.zeros((0, 2)), np.zeros(0, np.int32), np.zeros(1), np.zeros((0, 1), np.int8), period)
    path = folder / "signals.parquet"
    if not path.is_file():
        return empty
    table = _read_table(path, _SIGNAL_COLUMNS)
    if table.num_rows == 0:
        return empty
    import pyarrow.compute as pc

    vehicle = pc.invert(pc.starts_with(table["from_lane"], ":"))  # walking-area links are pedestrians'
    table = table.filter(pc.and_(vehicle, pc.is_valid(table["from_lane"])))
    t = table["time_s"].to_numpy().astype(np.float64)
    times = np.unique(t)
    col = np.searchsorted(times, t)
    tls, _ = _sorted_codes(table["tls_id"])
    key = tls * 65536 + table["link_index"].to_numpy().astype(np.int64)
    keys, row = np.unique(key, return_inverse=True)
    lane_code, lane_names = _sorted_codes(table["from_lane"])
    link_lane = np.zeros(len(keys), np.int64)
    link_lane[row] = lane_code
    state_code, state_names = _sorted_codes(table["state"])
    womd = np.array([_SUMO_STATE.get(s, 0) for s in state_names], np.int8)
    dense = np.full((len(keys), len(times)), -1, np.int8)
    dense[row, col] = womd[state_code]
    # Hold the last recorded state: a dataset may list only changes.
    idx = np.where(dense >= 0, np.arange(len(times)), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    dense = np.where(np.maximum.accumulate(dense >= 0, axis=1), np.take_along_axis(dense, idx, 1), -1)

    stop = _stop_points(folder)
    lane_feature = {fid[5:]: i for i, fid in enumerate(roadgraph.feature_ids) if fid.startswith("lane:")}
    xy: list[tuple[float, float]] = []
    ids: list[int] = []
    rows: list[np.ndarray] = []
    for code, lane in enumerate(lane_names):
        links = np.flatnonzero(link_lane == code)  # sorted by (tls, link index)
        if len(links) == 0 or lane not in stop:
            continue
        states = dense[links]
        if (states == states[:1]).all():
            chosen = [states[0]]
        else:
            chosen = [np.vectorize(lambda s: _ARROW.get(int(s), int(s)))(r).astype(np.int8) for r in states]
        for r in chosen:
            xy.append(stop[lane])
            ids.append(lane_feature.get(lane, -1))
            rows.append(r)
    if not rows:
        return empty
    return _Signals(np.asarray(xy), np.asarray(ids, np.int32), times, np.stack(rows), period)


def _stop_points(folder: Path) -> dict[str, tuple[float, float]]:
    """Midpoint of each lane's stop line; the end of its centre line where it has none."""
    points: dict[str, tuple[float, float]] = {}
    lanes = _layer(folder, "lanes", ("lane_id", "x", "y"))
    if lanes is not None:
        for i, lane_id in enumerate(lanes["lane_id"]):
            if lanes["x"][i]:
                points[lane_id] = (float(lanes["x"][i][-1]), float(lanes["y"][i][-1]))
    lines = _layer(folder, "stop_lines", ("lane_id", "x", "y"))
    if lines is not None:
        for i, lane_id in enumerate(lines["lane_id"]):
            if lines["x"][i]:
                points[lane_id] = (float(np.mean(lines["x"][i])), float(np.mean(lines["y"][i])))
    return points


# --- samples ---------------------------------------------------------------------------------------------


def _plan(tracks: _Tracks, opts: SampleSpec) -> np.ndarray:
    """Return the samples as rows (current tick, target agent code), sorted."""
    past, future, stride = opts.past, opts.future, opts.stride
    lo = tracks.seg_first + past  # a target needs the whole window inside one segment
    hi = tracks.seg_last - future
    lo = -(-lo // stride) * stride
    ok = hi >= lo
    if opts.target_types is not None:
        ok &= np.isin(tracks.agent_type[tracks.seg_agent], list(opts.target_types))
    lo, hi, agent = lo[ok], hi[ok], tracks.seg_agent[ok]
    counts = (hi - lo) // stride + 1
    if counts.sum() == 0:
        return np.zeros((0, 2), np.int64)
    first = np.repeat(lo, counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pairs = np.column_stack([first + offset * stride, np.repeat(agent, counts)])
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    rng = np.random.default_rng(opts.seed)
    draw = rng.random(len(pairs))
    order = np.lexsort((draw, pairs[:, 0]))
    ticks = pairs[order, 0]
    group_start = np.searchsorted(ticks, ticks, side="left")
    keep = order[(np.arange(len(order)) - group_start) < opts.max_targets]
    return pairs[np.sort(keep)]


def _nearest_pieces(roadgraph: _Roadgraph, ox: float, oy: float, k: int) -> np.ndarray:
    """Indices (sorted) of the ``k`` pieces nearest to (ox, oy), ties by index.

    Only pieces whose bounding circle can beat the k-th best upper bound get exact distances.
    """
    gap = np.hypot(roadgraph.centre[:, 0] - ox, roadgraph.centre[:, 1] - oy)
    if len(gap) > k:
        bound = np.partition(gap + roadgraph.radius, k - 1)[k - 1]
        cand = np.flatnonzero(gap - roadgraph.radius <= bound + 1e-9)
    else:
        cand = np.arange(len(gap))
    pts = roadgraph.points[cand]
    d = np.hypot(pts[..., 0] - ox, pts[..., 1] - oy)
    d = np.where(roadgraph.valid[cand], d, np.inf).min(axis=1)
    return np.sort(cand[np.lexsort((cand, d))[:k]])


def _rotate(dx: np.ndarray, dy: np.ndarray, c: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    return c * dx + s * dy, -s * dx + c * dy


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _sample(
    tick: int,
    target: int,
    window: _Window,
    tracks: _Tracks,
    roadgraph: _Roadgraph,
    signals: _Signals,
    opts: SampleSpec,
) -> dict[str, np.ndarray]:
    past, future, hz = opts.past, opts.future, opts.hz
    steps = past + 1 + future
    cols = slice(tick - past - window.tick0, tick - past - window.tick0 + steps)
    valid = window.valid[:, cols]
    ti = int(np.searchsorted(window.agents, target))
    cur = past
    ox, oy, oyaw = window.x[ti, cols][cur], window.y[ti, cols][cur], window.yaw[ti, cols][cur]
    c, s = math.cos(oyaw), math.sin(oyaw)

    # Agents: the target first, then the nearest (closest valid point in the window), ties by id.
    dist = np.where(valid, np.hypot(window.x[:, cols] - ox, window.y[:, cols] - oy), np.inf).min(axis=1)
    dist[ti] = -1.0
    present = np.flatnonzero(np.isfinite(dist))
    present = present[np.lexsort((window.agents[present], dist[present]))][: opts.max_agents]
    n, a = len(present), opts.max_agents
    v = valid[present]
    x, y = _rotate(window.x[present, cols] - ox, window.y[present, cols] - oy, c, s)
    yaw = _wrap(window.yaw[present, cols] - oyaw)
    speed = window.speed[present, cols]
    codes = window.agents[present]
    length = np.repeat(tracks.length[codes][:, None], steps, axis=1)
    width = np.repeat(tracks.width[codes][:, None], steps, axis=1)
    fields = {
        "x": x, "y": y, "bbox_yaw": yaw, "vel_yaw": yaw, "velocity_x": speed * np.cos(yaw),
        "velocity_y": speed * np.sin(yaw), "speed": speed, "length": length, "width": width,
    }  # fmt: skip
    out: dict[str, np.ndarray] = {}
    parts = {"past": slice(0, past), "current": slice(past, past + 1), "future": slice(past + 1, steps)}
    for part, span in parts.items():
        for name in _AGENT_FIELDS:
            arr = np.full((a, span.stop - span.start), -1.0, np.float32)
            arr[:n] = np.where(v[:, span], fields[name][:, span], -1.0)
            out[f"state/{part}/{name}"] = arr
        arr_v = np.zeros((a, span.stop - span.start), np.int8)
        arr_v[:n] = v[:, span]
        out[f"state/{part}/valid"] = arr_v
        stamps = (np.arange(tick - past, tick + future + 1)[span] * (1_000_000 // hz)).astype(np.int64)
        out[f"state/{part}/timestamp_micros"] = stamps
    ids = np.full(a, -1.0, np.float32)
    ids[:n] = codes
    kind = np.full(a, -1.0, np.float32)
    kind[:n] = tracks.kind[codes]
    predict = np.zeros(a, np.int8)
    predict[0] = 1
    out["state/id"], out["state/type"], out["state/tracks_to_predict"] = ids, kind, predict

    # Map: the nearest pieces, kept in piece order.
    size, p = opts.points_per_polyline, opts.max_polylines
    xyz = np.zeros((p * size, 3), np.float32)
    dirs = np.zeros((p * size, 3), np.float32)
    rtype = np.full((p * size, 1), -1, np.int8)
    rid = np.full((p * size, 1), -1, np.int32)
    rvalid = np.zeros((p * size, 1), np.int8)
    if len(roadgraph.points):
        near = _nearest_pieces(roadgraph, ox, oy, p)
        m = len(near) * size
        px, py = _rotate(roadgraph.points[near, :, 0] - ox, roadgraph.points[near, :, 1] - oy, c, s)
        dx, dy = _rotate(roadgraph.dirs[near, :, 0], roadgraph.dirs[near, :, 1], c, s)
        ok = roadgraph.valid[near]
        xyz[:m, 0], xyz[:m, 1] = np.where(ok, px, 0).ravel(), np.where(ok, py, 0).ravel()
        dirs[:m, 0], dirs[:m, 1] = np.where(ok, dx, 0).ravel(), np.where(ok, dy, 0).ravel()
        rtype[:m, 0] = np.where(ok, roadgraph.type[near][:, None], -1).ravel()
        rid[:m, 0] = np.where(ok, roadgraph.id[near][:, None], -1).ravel()
        rvalid[:m, 0] = ok.ravel()
    out["roadgraph_samples/xyz"], out["roadgraph_samples/dir"] = xyz, dirs
    out["roadgraph_samples/type"], out["roadgraph_samples/id"] = rtype, rid
    out["roadgraph_samples/valid"] = rvalid

    # Signals: the nearest stop points, in entry order; the state held from the last record.
    k = opts.max_signals
    ticks = np.arange(tick - past, tick + future + 1)
    sig = {
        name: np.full((steps, k), -1, np.int8 if name in ("state", "valid") else np.float32)
        for name in _SIGNAL_FIELDS
    }
    sig["id"] = np.full((steps, k), -1, np.int32)
    sig["valid"][:] = 0
    if len(signals.xy):
        d = np.hypot(signals.xy[:, 0] - ox, signals.xy[:, 1] - oy)
        near = np.sort(np.lexsort((np.arange(len(d)), d))[:k])
        when = ticks / hz
        col = np.searchsorted(signals.times, when + 1e-6, side="right") - 1
        inside = (col >= 0) & (when <= signals.times[-1] + signals.period + 1e-6)
        state = np.where(inside[:, None], signals.state[near][:, np.maximum(col, 0)].T, -1)
        ok = state >= 0
        sx, sy = _rotate(signals.xy[near, 0] - ox, signals.xy[near, 1] - oy, c, s)
        j = len(near)
        sig["state"][:, :j] = state
        sig["valid"][:, :j] = ok
        sig["x"][:, :j] = np.where(ok, sx[None, :], -1)
        sig["y"][:, :j] = np.where(ok, sy[None, :], -1)
        sig["z"][:, :j] = np.where(ok, 0.0, -1)
        sig["id"][:, :j] = np.where(ok, signals.id[near][None, :], -1)
    for part, span in parts.items():
        for name in _SIGNAL_FIELDS:
            out[f"traffic_light_state/{part}/{name}"] = sig[name][span]

    out["sample/origin"] = np.array([ox, oy, oyaw], np.float64)
    out["sample/current_time_s"] = np.array(tick / hz, np.float64)
    return out


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A ``.npz`` whose bytes depend only on the arrays (fixed entry times and order)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=1)


def build_samples(
    dataset_dir: str | Path,
    *,
    out: str | Path | None = None,
    history_s: float = 1.0,
    future_s: float = 8.0,
    hz: int = 10,
    max_agents: int = 128,
    stride_s: float = 1.0,
    max_targets: int = 8,
    target_types: Sequence[str] | None = None,
    max_polylines: int = 256,
    points_per_polyline: int = 20,
    roadgraph_spacing_m: float = 1.0,
    max_signals: int = 16,
    samples_per_shard: int = 64,
    seed: int = 0,
    workers: int = 2,
    progress: bool | Callable[[int, int], None] = False,
) -> Path:
    """Write a dataset's motion-forecasting samples (WOMD layout) and return their folder.

    Parameters
    ----------
    dataset_dir
        A dataset folder (``roadtwin datasets export``, ``datasets/SCHEMA.md``).
    out
        The samples folder (default ``DATASET/samples``).
    history_s, future_s, hz
        The window: ``history_s * hz`` past steps, the current one, and ``future_s * hz`` future steps
        (WOMD: 10 + 1 + 80 at 10 Hz).
    max_agents
        Agent rows per sample (WOMD: 128); beyond it the farthest agents are dropped.
    stride_s
        Seconds between two current times.
    max_targets
        Targets (samples) per current time, drawn with ``seed`` among the agents valid over the window.
    target_types
        Agent types that may be targets (``car``, ``bus``, ``truck``, ``av``, ``pedestrian``); all by default.
    max_polylines, points_per_polyline, roadgraph_spacing_m
        Map pieces kept per sample, points per piece, and metres between two points.
    max_signals
        Signal entries per sample (WOMD: 16).
    samples_per_shard
        Samples per ``.npz`` shard.
    seed
        Seed of the target draw; the same inputs and options give byte-identical shards.
    workers
        Shards built at once (threads); the output does not depend on it.
    progress
        Show a progress bar, or a callback ``f(done_shards, total_shards)``.

    Returns
    -------
    Path
        The samples folder; ``index.json`` in it is written last.

    Raises
    ------
    InputError
        ``dataset_dir`` is not a dataset (no ``manifest.json``, another schema version, missing columns)
        or an option is out of range.
    """
    folder = Path(dataset_dir)
    opts = SampleSpec(
        history_s=history_s, future_s=future_s, hz=hz, max_agents=max_agents, stride_s=stride_s,
        max_targets=max_targets, target_types=tuple(target_types) if target_types is not None else None,
        max_polylines=max_polylines, points_per_polyline=points_per_polyline,
        roadgraph_spacing_m=roadgraph_spacing_m, max_signals=max_signals, samples_per_shard=samples_per_shard,
        seed=seed,
    )  # fmt: skip
    _check(opts)
    manifest = _read_manifest(folder)
    root = Path(out) if out is not None else folder / "samples"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob("*.tmp-*"):  # left by a killed build
        stale.unlink()
    manifest_sha = sha256_file(folder / "manifest.json")
    plan_doc = {"format": SAMPLES_FORMAT, "manifest_sha256": manifest_sha, "options": asdict(opts)}
    plan_path = root / "plan.json"
    if not plan_path.is_file() or json.loads(plan_path.read_text(encoding="utf-8")) != json.loads(
        json.dumps(plan_doc)
    ):
        for old in [*root.glob("shard-*.npz"), root / "index.json"]:
            old.unlink(missing_ok=True)
        write_json(plan_path, plan_doc)

    tracks = _read_tracks(folder, opts.hz)
    roadgraph = _read_roadgraph(folder, opts)
    signals = _read_signals(folder, roadgraph, tracks.period)
    samples = _plan(tracks, opts)
    per = opts.samples_per_shard
    n_shards = max(1, -(-len(samples) // per))
    report = _progress(progress, n_shards)
    run_id = str(manifest.get("run_id", ""))

    def shard(k: int) -> dict[str, Any]:
        path = root / f"shard-{k:05d}.npz"
        rows = samples[k * per : (k + 1) * per]
        if not path.is_file():  # a finished shard of a killed build is kept
            _write_npz(path, _shard(rows, tracks, roadgraph, signals, opts, run_id=run_id))
        return {
            "file": path.name,
            "samples": len(rows),
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
        }

    # Shards are independent: threads overlap NumPy and zlib, which both release the GIL.
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    shards = []
    try:
        for k, entry in enumerate(pool.map(shard, range(n_shards))):
            shards.append(entry)
            report(k + 1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    keys = _key_table(opts)
    index = {
        "format": SAMPLES_FORMAT,
        "dataset": {
            "run_id": manifest.get("run_id"), "scenario": manifest.get("scenario"),
            "schema_version": manifest.get("schema_version"), "manifest_sha256": manifest_sha,
        },
        "split": manifest.get("split", "train"),
        "options": asdict(opts),
        "steps": {"past": opts.past, "current": 1, "future": opts.future, "hz": opts.hz},
        "samples": len(samples),
        "shards": shards,
        "keys": keys,
        "codes": {"state/type": AGENT_TYPES, "roadgraph_samples/type": ROADGRAPH_TYPES,
                  "traffic_light_state/state": SIGNAL_STATES},
        "agent_ids": tracks.ids,
        "map_feature_ids": roadgraph.feature_ids,
    }  # fmt: skip
    write_json(root / "index.json", index)
    return root


def _check(opts: SampleSpec) -> None:
    def bad(field: str, expected: str, got: object) -> InputError:
        return InputError(path=None, field=field, expected=expected, got=got)

    if opts.hz < 1 or 1_000_000 % opts.hz:
        raise bad("hz", "a whole number of steps per second dividing 1,000,000", opts.hz)
    if abs(opts.history_s * opts.hz - round(opts.history_s * opts.hz)) > 1e-6 or opts.past < 0:
        raise bad("history_s", f"a positive multiple of 1/hz = {1 / opts.hz:g} s", opts.history_s)
    if abs(opts.future_s * opts.hz - round(opts.future_s * opts.hz)) > 1e-6 or opts.future < 1:
        raise bad("future_s", f"a positive multiple of 1/hz = {1 / opts.hz:g} s", opts.future_s)
    for name in ("max_agents", "max_targets", "max_polylines", "points_per_polyline", "max_signals",
                 "samples_per_shard"):  # fmt: skip
        if getattr(opts, name) < 1:
            raise bad(name, "a positive integer", getattr(opts, name))
    if opts.stride_s <= 0:
        raise bad("stride_s", "a positive number of seconds", opts.stride_s)
    if opts.roadgraph_spacing_m <= 0:
        raise bad("roadgraph_spacing_m", "a positive distance in metres", opts.roadgraph_spacing_m)


def _shard(
    rows: np.ndarray,
    tracks: _Tracks,
    roadgraph: _Roadgraph,
    signals: _Signals,
    opts: SampleSpec,
    *,
    run_id: str,
) -> dict[str, np.ndarray]:
    if len(rows) == 0:
        return {key: np.zeros((0, *spec["shape"]), spec["dtype"]) for key, spec in _key_table(opts).items()}
    window = _resample(tracks, int(rows[0, 0]) - opts.past, int(rows[-1, 0]) + opts.future, opts.hz)
    parts = [_sample(int(t), int(a), window, tracks, roadgraph, signals, opts) for t, a in rows]
    arrays = {key: np.stack([p[key] for p in parts]) for key in parts[0]}
    arrays["scenario/id"] = np.array([f"{run_id}@{t / opts.hz:.1f}" for t, _ in rows])
    arrays["sample/target_id"] = np.array([tracks.ids[int(a)] for _, a in rows])
    return arrays


def _key_table(opts: SampleSpec) -> dict[str, dict[str, Any]]:
    """Every key of a sample: its shape (per sample) and dtype."""
    a, p, k = opts.max_agents, opts.max_polylines * opts.points_per_polyline, opts.max_signals
    lens = {"past": opts.past, "current": 1, "future": opts.future}
    keys: dict[str, dict[str, Any]] = {}
    for part, n in lens.items():
        for name in _AGENT_FIELDS:
            keys[f"state/{part}/{name}"] = {"shape": [a, n], "dtype": "float32"}
        keys[f"state/{part}/valid"] = {"shape": [a, n], "dtype": "int8"}
        keys[f"state/{part}/timestamp_micros"] = {"shape": [n], "dtype": "int64"}
        for name in _SIGNAL_FIELDS:
            dtype = {"state": "int8", "valid": "int8", "id": "int32"}.get(name, "float32")
            keys[f"traffic_light_state/{part}/{name}"] = {"shape": [n, k], "dtype": dtype}
    keys["state/id"] = {"shape": [a], "dtype": "float32"}
    keys["state/type"] = {"shape": [a], "dtype": "float32"}
    keys["state/tracks_to_predict"] = {"shape": [a], "dtype": "int8"}
    keys["roadgraph_samples/xyz"] = {"shape": [p, 3], "dtype": "float32"}
    keys["roadgraph_samples/dir"] = {"shape": [p, 3], "dtype": "float32"}
    keys["roadgraph_samples/type"] = {"shape": [p, 1], "dtype": "int8"}
    keys["roadgraph_samples/id"] = {"shape": [p, 1], "dtype": "int32"}
    keys["roadgraph_samples/valid"] = {"shape": [p, 1], "dtype": "int8"}
    keys["sample/origin"] = {"shape": [3], "dtype": "float64"}
    keys["sample/current_time_s"] = {"shape": [], "dtype": "float64"}
    keys["scenario/id"] = {"shape": [], "dtype": "str"}
    keys["sample/target_id"] = {"shape": [], "dtype": "str"}
    return dict(sorted(keys.items()))


def _progress(progress: bool | Callable[[int, int], None], total: int) -> Callable[[int], None]:
    if callable(progress):
        return lambda done: progress(done, total)
    if not progress:
        return lambda done: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("samples", total=total)
    bar.start()

    def update(done: int) -> None:
        bar.update(task, completed=done)
        if done >= total:
            bar.stop()

    return update


# --- reading samples -------------------------------------------------------------------------------------


def read_index(samples_dir: str | Path) -> dict[str, Any]:
    """Return a samples folder's ``index.json``; raise :class:`InputError` if it is not complete."""
    root = Path(samples_dir)
    path = root / "index.json"
    if not path.is_file():
        raise InputError(
            path=root, field="index.json", expected="a complete samples folder (roadtwin datasets samples)"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path=path, field=None, expected="a JSON object") from None
    if not isinstance(index, dict) or not isinstance(index.get("format"), dict):
        raise InputError(path=path, field="format", expected=SAMPLES_FORMAT["name"])
    if index["format"].get("name") != SAMPLES_FORMAT["name"]:
        raise InputError(path=path, field="format", expected=SAMPLES_FORMAT["name"], got=index.get("format"))
    return index


def _motion_dataset_class() -> type:
    torch = require("torch", extra="twin")

    class MotionDataset(torch.utils.data.Dataset):  # type: ignore[misc,name-defined]
        """Samples of :func:`build_samples` as dicts of tensors (numeric keys; ``valid`` keys as bool).

        Parameters
        ----------
        samples_dir
            A samples folder (with ``index.json``).
        keys
            Keys to return (default: every numeric key).
        cache_shards
            Decompressed shards kept in memory; read samples shard by shard (:meth:`sampler`) to hit it.
        """

        def __init__(
            self, samples_dir: str | Path, *, keys: Sequence[str] | None = None, cache_shards: int = 2
        ) -> None:
            self.root = Path(samples_dir)
            self.index = read_index(self.root)
            numeric = [k for k, spec in self.index["keys"].items() if spec["dtype"] != "str"]
            self.keys = list(keys) if keys is not None else numeric
            unknown = [k for k in self.keys if k not in numeric]
            if unknown:
                raise InputError(
                    path=self.root, field="keys", expected=f"keys among {numeric[:3]}...", got=unknown
                )
            counts = [s["samples"] for s in self.index["shards"]]
            self._starts = np.cumsum([0, *counts])
            self._cache: dict[int, dict[str, np.ndarray]] = {}
            self._cache_size = max(1, cache_shards)

        @property
        def split(self) -> str:
            """The dataset's split (``train``, ``val``, ``test``) from its manifest."""
            return str(self.index["split"])

        def __len__(self) -> int:
            return int(self._starts[-1])

        def _locate(self, i: int) -> tuple[dict[str, np.ndarray], int]:
            if not 0 <= i < len(self):
                raise IndexError(i)
            k = int(np.searchsorted(self._starts, i, side="right") - 1)
            if k not in self._cache:
                if len(self._cache) >= self._cache_size:
                    self._cache.pop(next(iter(self._cache)))
                with np.load(self.root / self.index["shards"][k]["file"], allow_pickle=False) as npz:
                    self._cache[k] = {key: npz[key] for key in npz.files}
            return self._cache[k], i - int(self._starts[k])

        def __getitem__(self, i: int) -> dict[str, Any]:
            shard, row = self._locate(int(i))
            out = {}
            for key in self.keys:
                value = torch.from_numpy(np.array(shard[key][row]))
                out[key] = (
                    value.bool() if key.endswith("/valid") or key.endswith("tracks_to_predict") else value
                )
            return out

        def meta(self, i: int) -> dict[str, Any]:
            """The sample's scenario id, target agent id, current time and origin (x, y, yaw) in the network."""
            shard, row = self._locate(int(i))
            return {
                "scenario_id": str(shard["scenario/id"][row]),
                "target_id": str(shard["sample/target_id"][row]),
                "current_time_s": float(shard["sample/current_time_s"][row]),
                "origin": tuple(float(v) for v in shard["sample/origin"][row]),
            }

        def sampler(self, *, shuffle: bool = True, seed: int = 0) -> list[int]:
            """Indices shard by shard (shards and samples within each shuffled): ``DataLoader(sampler=)``."""
            rng = np.random.default_rng(seed)
            shards = rng.permutation(len(self._starts) - 1) if shuffle else range(len(self._starts) - 1)
            order: list[int] = []
            for k in shards:
                ids = np.arange(self._starts[k], self._starts[k + 1])
                order += (rng.permutation(ids) if shuffle else ids).tolist()
            return order

    return MotionDataset


def __getattr__(name: str) -> Any:
    # MotionDataset subclasses torch's Dataset: built on first use so importing this module needs no torch.
    if name == "MotionDataset":
        cls = _motion_dataset_class()
        globals()["MotionDataset"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- CLI -------------------------------------------------------------------------------------------------


class SamplesOptions(StrictModel):
    """Options of ``roadtwin datasets samples`` (also settable in a ``--config`` YAML file)."""

    dataset: Path
    out: Path | None = None
    history_s: float = Field(1.0, gt=0, le=60)
    future_s: float = Field(8.0, gt=0, le=120)
    hz: int = Field(10, ge=1, le=100)
    max_agents: int = Field(128, ge=1, le=4096)
    stride_s: float = Field(1.0, gt=0)
    max_targets: int = Field(8, ge=1)
    target_types: list[str] | None = None
    max_polylines: int = Field(256, ge=1)
    points_per_polyline: int = Field(20, ge=2)
    roadgraph_spacing_m: float = Field(1.0, gt=0)
    max_signals: int = Field(16, ge=1)
    samples_per_shard: int = Field(64, ge=1)
    seed: int = Field(0, ge=0)
    workers: int = Field(2, ge=1, le=64)
    progress: bool = True


def samples_command(
    dataset: Annotated[
        Path | None, typer.Argument(help="A dataset folder (roadtwin datasets export).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Samples folder (default DATASET/samples).")] = None,
    history_s: Annotated[float | None, typer.Option(help="History before the current step, s (1).")] = None,
    future_s: Annotated[float | None, typer.Option(help="Future to predict, s (8).")] = None,
    hz: Annotated[int | None, typer.Option(help="Steps per second (10).")] = None,
    max_agents: Annotated[int | None, typer.Option(help="Agents per sample, nearest first (128).")] = None,
    stride_s: Annotated[float | None, typer.Option(help="Seconds between two current times (1).")] = None,
    max_targets: Annotated[int | None, typer.Option(help="Samples per current time (8).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the target draw (0).")] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Write motion-forecasting samples in the Waymo Open Motion Dataset layout (DATASET/samples/).

    Agent-centric windows (1 s history, 8 s future at 10 Hz by default), up to 128 agents, map
    polylines and signal states, in compressed .npz shards; keys in datasets/MOTION.md. A killed
    build resumes: finished shards are kept, index.json is written last.
    """
    opts = load_options(
        SamplesOptions, config=config, dataset=dataset, out=out, history_s=history_s, future_s=future_s, hz=hz,
        max_agents=max_agents, stride_s=stride_s, max_targets=max_targets, seed=seed, progress=progress,
    )  # fmt: skip
    started = time.perf_counter()
    fields = opts.model_dump(exclude={"dataset"})
    root = build_samples(opts.dataset, **fields)
    seconds = time.perf_counter() - started
    index = read_index(root)
    n = index["samples"]
    size = sum(s["bytes"] for s in index["shards"])
    typer.echo(
        f"{n:,} samples ({index['split']}) in {len(index['shards'])} shards, {seconds:.1f} s "
        f"({n / max(seconds, 1e-9):,.0f} samples/s, {size / max(n, 1) / 1024:,.1f} KiB/sample): {root}"
    )
