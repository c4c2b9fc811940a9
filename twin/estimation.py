"""State estimation: per-edge speed, flow and density of the zone, fused from loops and probes.

Sources, per edge and interval (``resolution_s``, 60 or 300 s, aligned to the clock):

- **loops** (``loop:{lane}:stop`` / ``loop:{lane}:up`` on every signal approach): flow is the
  stop-line count summed over the edge's lanes (the upstream loops where a lane has no stop-line
  loop); speed is the count-weighted spot speed of the upstream loops (stop-line loops otherwise).
  A spot speed at a signalised approach is not the edge's space-mean speed (it never sees the
  vehicles waiting at red), so it gets a wide error (:data:`LOOP_SPEED_SD`, a share of free-flow).
- **probes**: every report is map-matched to the nearest vehicle lane whose direction agrees with
  the probe's heading (lane shapes from sumolib, positions through the network's own projection,
  vectorised with a k-d tree over points every :data:`MATCH_STEP_M` along the lanes). Reports are
  time samples, so their mean speed is the edge's space-mean speed (as SUMO's edgeData defines it);
  its variance shrinks with the number of distinct probes. Probe flow and density follow Edie's
  definitions (distance and time driven per edge length and interval) scaled by the probe share,
  which is itself estimated against the loops (so dropout is accounted for). Probes that never
  exceed :data:`MIN_PROBE_TOP_SPEED_KMH` are walkers or parked cars and are left out.
- **radar** (optional, ``sources=("loop", "probe", "radar")``): a spot speed and count on every edge.

Speeds are fused with inverse-variance weights. Density is flow / speed (from the loops'
occupancy when the speed is below :data:`QUEUE_SPEED_KMH`). An edge without data in an interval
takes the speed ratio (speed / free-flow) of its neighbours (low confidence), or of the whole
zone (lower still). ``confidence`` is in [0, 1]: 1 - the speed's standard error / (half of the
free-flow speed), 0.15 for a neighbour fallback, 0.05 for the zone fallback.

The state table (also the store table ``state``, see :data:`STATE_COLUMNS`) has one row per edge
and interval: ``edge``, ``interval_start`` (UTC), ``resolution_s``, ``speed_kmh``, ``flow_veh_h``,
``density_veh_km``, ``confidence``, plus ``free_flow_kmh``, ``sources`` (``loop+probe``...) and
``n_probes`` in the returned frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roadtwin.errors import InputError

__all__ = [
    "LOOP_SPEED_SD",
    "MATCH_STEP_M",
    "MIN_PROBE_TOP_SPEED_KMH",
    "QUEUE_SPEED_KMH",
    "SPEED_DRIFT",
    "STATE_COLUMNS",
    "EdgeGeometry",
    "edge_geometry",
    "estimate_state",
    "map_match",
    "score_state",
    "truth_at",
    "write_state",
]

#: Columns of the store table ``state`` (one row per edge and interval), in order, with their SQL types.
STATE_COLUMNS: dict[str, str] = {
    "edge": "VARCHAR",
    "interval_start": "TIMESTAMPTZ",
    "resolution_s": "INTEGER",
    "speed_kmh": "DOUBLE",
    "flow_veh_h": "DOUBLE",
    "density_veh_km": "DOUBLE",
    "confidence": "DOUBLE",
}
#: Spacing in m of the lane points probes are matched against.
MATCH_STEP_M = 2.0
#: Standard deviation of a loop's spot speed as an edge speed, as a share of free-flow speed.
LOOP_SPEED_SD = 0.30
#: Probes whose fastest report is slower than this are dropped (walkers, parked cars).
MIN_PROBE_TOP_SPEED_KMH = 12.0
#: Drift per minute of an edge's speed ratio (speed / free-flow) in the causal filter over intervals.
SPEED_DRIFT = 0.3
#: Below this fused speed, density comes from loop occupancy instead of flow / speed.
QUEUE_SPEED_KMH = 8.0

_MATCH_RADIUS_M = 30.0
_MAX_HEADING_DEG = 60.0
_PROBE_FLOOR_SD_KMH = 3.0
_PROBE_SPREAD_KMH = 30.0
_RADAR_SPEED_SD = 0.25
_VEHICLE_SPACE_M = 7.5
_VEHICLE_CLASSES = ("passenger", "bus", "truck", "delivery", "taxi")
_CONF_NEIGHBOUR, _CONF_ZONE = 0.15, 0.05
_EDGE_SHRINK = 3.0


@dataclass(frozen=True)
class EdgeGeometry:
    """What estimation needs of a network's road edges.

    Attributes
    ----------
    edges
        One row per road edge: ``edge``, ``free_flow_kmh``, ``length_m``, ``lanes``.
    neighbours
        Edge id -> ids of the edges upstream and downstream of it.
    points, point_edge, point_heading
        Lane points every :data:`MATCH_STEP_M` (x, y in network coordinates), the row of ``edges``
        each belongs to, and the lane's heading there (degrees clockwise from north).
    net
        The sumolib network (for its projection).
    """

    edges: pd.DataFrame
    neighbours: dict[str, list[str]]
    points: np.ndarray
    point_edge: np.ndarray
    point_heading: np.ndarray
    net: Any


def _vehicle_lane(lane: Any) -> bool:
    return any(lane.allows(c) for c in _VEHICLE_CLASSES)


def edge_geometry(net_file: str | os.PathLike[str]) -> EdgeGeometry:
    """Read the road edges of ``net_file``: free-flow speeds, lengths, neighbours and lane points."""
    from roadtwin.maps.network import load_net

    net = load_net(net_file)
    rows: list[tuple[str, float, float, int]] = []
    pts: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    heads: list[np.ndarray] = []
    for edge in net.getEdges(withInternal=False):
        if edge.getFunction() != "":
            continue
        lanes = [lane for lane in edge.getLanes() if _vehicle_lane(lane)]
        if not lanes:
            continue
        k = len(rows)
        rows.append(
            (edge.getID(), max(lane.getSpeed() for lane in lanes) * 3.6, edge.getLength(), len(lanes))
        )
        for lane in lanes:
            shape = np.asarray(lane.getShape(), dtype=np.float64)[:, :2]
            seg = np.diff(shape, axis=0)
            seg_len = np.hypot(seg[:, 0], seg[:, 1])
            for (x0, y0), (dx, dy), sl in zip(shape[:-1], seg, seg_len, strict=True):
                if sl <= 0:
                    continue
                t = np.linspace(0.0, 1.0, max(int(np.ceil(sl / MATCH_STEP_M)), 1) + 1)
                pts.append(np.column_stack([x0 + t * dx, y0 + t * dy]))
                owner.append(np.full(len(t), k, dtype=np.int64))
                heads.append(np.full(len(t), np.degrees(np.arctan2(dx, dy)) % 360.0))
    edges = pd.DataFrame(rows, columns=["edge", "free_flow_kmh", "length_m", "lanes"])
    known = set(edges["edge"])
    neighbours: dict[str, list[str]] = {}
    for eid in edges["edge"]:
        e = net.getEdge(eid)
        near = [x.getID() for x in (*e.getIncoming(), *e.getOutgoing())]
        neighbours[eid] = sorted({n for n in near if n in known and n != eid})
    return EdgeGeometry(
        edges=edges,
        neighbours=neighbours,
        points=np.concatenate(pts) if pts else np.empty((0, 2)),
        point_edge=np.concatenate(owner) if owner else np.empty(0, dtype=np.int64),
        point_heading=np.concatenate(heads) if heads else np.empty(0),
        net=net,
    )


def map_match(
    lon_deg: np.ndarray, lat_deg: np.ndarray, heading_deg: np.ndarray, *, geometry: EdgeGeometry
) -> np.ndarray:
    """Return the edge id of each probe report (``None`` where no lane within 30 m agrees with its heading).

    Positions go through the network's projection (sumolib's ``convertLonLat2XY``, on whole arrays);
    the nearest of the 16 closest lane points whose heading is within 60 degrees of the probe's wins.
    """
    from scipy.spatial import cKDTree

    n = len(lon_deg)
    out = np.full(n, None, dtype=object)
    if n == 0 or len(geometry.points) == 0:
        return out
    x, y = geometry.net.convertLonLat2XY(np.asarray(lon_deg, float), np.asarray(lat_deg, float))
    tree = cKDTree(geometry.points)
    k = min(16, len(geometry.points))
    dist, idx = tree.query(np.column_stack([x, y]), k=k, distance_upper_bound=_MATCH_RADIUS_M)
    dist, idx = np.atleast_2d(dist), np.atleast_2d(idx)
    valid = np.isfinite(dist)
    safe = np.where(valid, idx, 0)
    diff = np.abs(
        (geometry.point_heading[safe] - np.asarray(heading_deg, float)[:, None] + 180.0) % 360.0 - 180.0
    )
    ok = valid & (diff <= _MAX_HEADING_DEG)
    score = np.where(ok, dist, np.inf)
    best = np.argmin(score, axis=1)
    found = np.isfinite(score[np.arange(n), best])
    names = geometry.edges["edge"].to_numpy(dtype=object)
    out[found] = names[geometry.point_edge[safe[np.arange(n), best]][found]]
    return out


# --- reading the feeds ---------------------------------------------------------------------------------


def _read_feeds(source: Any, window: tuple[Any, Any] | None = None) -> dict[str, pd.DataFrame]:
    """Return the loop, radar and probe observations and the sensor registry of a folder or store."""
    from roadtwin.twin.store import Store

    if isinstance(source, Store):
        start, end = window if window is not None else (None, None)
        out = {k: source.observations(k, start=start, end=end) for k in ("loop", "camera", "radar", "probe")}
        out["sensors"] = source.con.sql("SELECT * FROM sensors").to_arrow_table().to_pandas()
        return out
    folder = Path(source)
    if not (folder / "sensors.parquet").is_file():
        raise InputError(
            path=folder, field="sensors.parquet", expected="a feeds folder (roadtwin twin sense)"
        )
    out = {}
    for kind in ("loop", "camera", "radar", "probe", "sensors"):
        path = folder / f"{kind}.parquet"
        out[kind] = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
    return out


def _bucket(ts: pd.Series, resolution_s: int) -> pd.Series:
    t = pd.to_datetime(ts, utc=True)
    return t.dt.floor(f"{resolution_s}s")


def _loop_estimates(loops: pd.DataFrame, sensors: pd.DataFrame, resolution_s: int) -> pd.DataFrame:
    cols = ["edge", "interval_start", "loop_flow", "loop_speed", "loop_occ", "loop_lanes", "up_speed",
            "stop_speed", "up_occ", "stop_occ"]  # fmt: skip
    if loops.empty:
        return pd.DataFrame(columns=cols)
    reg = sensors[sensors["kind"] == "loop"][["sensor_id", "edge_id", "lane_id"]]
    df = loops.merge(reg, on="sensor_id", how="inner")
    df["where"] = np.where(df["sensor_id"].str.endswith(":stop"), "stop", "up")
    df["interval_start"] = _bucket(df["measured_at"], resolution_s)
    df["dist"] = df["speed_kmh"].fillna(0.0) * df["count_veh"]
    g = df.groupby(["edge_id", "lane_id", "where", "interval_start"], observed=True).agg(
        count=("count_veh", "sum"), dist=("dist", "sum"), occ=("occupancy_pct", "mean"),
        seconds=("interval_s", "sum"), n=("count_veh", "size"),
    ).reset_index()  # fmt: skip
    # One count per lane: the stop-line loop where there is one (every lane has), else the upstream one.
    g["rank"] = (g["where"] != "stop").astype(int)
    lane = g.sort_values("rank").drop_duplicates(["edge_id", "lane_id", "interval_start"])
    flow = lane.groupby(["edge_id", "interval_start"]).agg(
        count=("count", "sum"), seconds=("seconds", "mean"), lanes=("lane_id", "nunique"), occ=("occ", "mean")
    )
    flow["loop_flow"] = flow["count"] * 3600.0 / flow["seconds"].clip(lower=1)
    # Speed: upstream loops see moving traffic; stop-line loops only when there are no upstream ones.
    sp = g.groupby(["edge_id", "where", "interval_start"]).agg(
        count=("count", "sum"), dist=("dist", "sum"), occ=("occ", "mean")
    )
    sp["speed"] = (sp["dist"] / sp["count"]).where(sp["count"] > 0)
    wide = sp[["speed", "occ"]].unstack("where")
    wide.columns = [f"{w}_{c}" for c, w in wide.columns]
    for c in ("up_speed", "stop_speed", "up_occ", "stop_occ"):
        if c not in wide:
            wide[c] = np.nan
    out = flow.join(wide, how="left").reset_index()
    # The loops' own edge speed: upstream loops see moving traffic, stop-line loops only when alone.
    out["loop_speed"] = out["up_speed"].fillna(out["stop_speed"])
    out = out.rename(columns={"edge_id": "edge", "occ": "loop_occ", "lanes": "loop_lanes"})
    return out[cols]


def _radar_estimates(radar: pd.DataFrame, sensors: pd.DataFrame, resolution_s: int) -> pd.DataFrame:
    cols = ["edge", "interval_start", "radar_flow", "radar_speed"]
    if radar.empty:
        return pd.DataFrame(columns=cols)
    reg = sensors[sensors["kind"] == "radar"][["sensor_id", "edge_id"]]
    df = radar.merge(reg, on="sensor_id", how="inner")
    df["interval_start"] = _bucket(df["measured_at"], resolution_s)
    df["dist"] = df["speed_kmh"].fillna(0.0) * df["count_veh"]
    g = df.groupby(["edge_id", "interval_start"]).agg(
        count=("count_veh", "sum"),
        dist=("dist", "sum"),
        seconds=("interval_s", "sum"),
        n=("count_veh", "size"),
    )
    g["radar_flow"] = g["count"] * 3600.0 / (g["seconds"] / g["n"]).clip(lower=1)
    g["radar_speed"] = np.where(g["count"] > 0, g["dist"] / g["count"].clip(lower=1), np.nan)
    return g.reset_index().rename(columns={"edge_id": "edge"})[cols]


def _camera_estimates(camera: pd.DataFrame, sensors: pd.DataFrame, resolution_s: int) -> pd.DataFrame:
    cols = ["edge", "interval_start", "cam_queue", "cam_occ"]
    if camera.empty:
        return pd.DataFrame(columns=cols)
    reg = sensors[sensors["kind"] == "camera"][["sensor_id", "edge_id", "length_m"]]
    df = camera.merge(reg, on="sensor_id", how="inner")
    df["interval_start"] = _bucket(df["measured_at"], resolution_s)
    df["queue"] = df["queue_m"] / df["length_m"].clip(lower=1.0)
    g = df.groupby(["edge_id", "interval_start"]).agg(
        cam_queue=("queue", "mean"), cam_occ=("occupancy_pct", "mean")
    )
    g["cam_occ"] = g["cam_occ"] / 100.0
    return g.reset_index().rename(columns={"edge_id": "edge"})[cols]


def _report_interval_s(probe: pd.DataFrame) -> float:
    """The probes' reporting interval: the median gap between two reports of one probe."""
    t = pd.to_datetime(probe["measured_at"], utc=True).astype("int64") / 1e9
    gaps = pd.Series(t.to_numpy()).groupby(probe["probe_id"].to_numpy()).diff().dropna()
    gaps = gaps[gaps > 0]
    return float(gaps.median()) if len(gaps) else 1.0


def _probe_estimates(probe: pd.DataFrame, geometry: EdgeGeometry, resolution_s: int) -> pd.DataFrame:
    cols = ["edge", "interval_start", "probe_speed", "probe_var", "n_probes", "probe_time_s", "probe_dist_m"]
    if probe.empty:
        return pd.DataFrame(columns=cols)
    df = probe[["probe_id", "measured_at", "lon_deg", "lat_deg", "speed_kmh", "heading_deg"]].copy()
    # A "probe" that never exceeds walking pace is a phone on foot (or a parked car), not traffic.
    fastest = df.groupby("probe_id")["speed_kmh"].transform("max")
    df = df[fastest >= MIN_PROBE_TOP_SPEED_KMH]
    df["edge"] = map_match(df["lon_deg"].to_numpy(), df["lat_deg"].to_numpy(), df["heading_deg"].to_numpy(),
                           geometry=geometry)  # fmt: skip
    dt_s = _report_interval_s(df)
    df = df[df["edge"].notna()]
    df["interval_start"] = _bucket(df["measured_at"], resolution_s)
    g = df.groupby(["edge", "interval_start"]).agg(
        probe_speed=("speed_kmh", "mean"), sd=("speed_kmh", "std"), n_points=("speed_kmh", "size"),
        n_probes=("probe_id", "nunique"),
    )  # fmt: skip
    spread = np.sqrt(np.nan_to_num(g["sd"].to_numpy(), nan=0.0) ** 2 + _PROBE_SPREAD_KMH**2)
    # Reports of one probe are strongly correlated: the distinct probes are the sample size.
    g["probe_var"] = spread**2 / g["n_probes"] + _PROBE_FLOOR_SD_KMH**2
    g["probe_time_s"] = g["n_points"] * dt_s
    g["probe_dist_m"] = g["probe_speed"] / 3.6 * g["probe_time_s"]
    return g.reset_index()[cols]


# --- fusion ---------------------------------------------------------------------------------------------


def estimate_state(
    source: str | os.PathLike[str] | Any,
    *,
    net_file: str | os.PathLike[str],
    resolution_s: int = 60,
    sources: tuple[str, ...] = ("loop", "probe"),
    geometry: EdgeGeometry | None = None,
    smooth: bool = True,
    window: tuple[Any, Any] | None = None,
) -> pd.DataFrame:
    """Estimate per-edge speed, flow and density for every interval of the feeds.

    Parameters
    ----------
    source
        A feeds folder (``RUN/feeds``, written by ``roadtwin twin sense``) or an open
        :class:`~roadtwin.twin.store.Store`.
    net_file
        The zone's network (edges, free-flow speeds, lane shapes, projection).
    resolution_s
        Interval length in s: 60 or 300 (intervals are aligned to the clock, UTC).
    sources
        Feeds to fuse, any of ``loop``, ``probe``, ``radar``.
    geometry
        A precomputed :func:`edge_geometry` of ``net_file`` (saves reading it again).
    smooth
        Filter each edge's speed through the intervals (causal Kalman filter, :data:`SPEED_DRIFT`).
    window
        ``(start, end)`` times (UTC): only observations measured in ``[start, end)`` are read from a
        store (a store holds every day ingested).

    Returns
    -------
    pandas.DataFrame
        One row per road edge and interval: ``edge``, ``interval_start`` (UTC), ``resolution_s``,
        ``speed_kmh``, ``flow_veh_h``, ``density_veh_km``, ``confidence``, ``free_flow_kmh``,
        ``sources`` and ``n_probes``.

    Raises
    ------
    InputError
        An unsupported resolution or source, or a folder that is not a feeds folder.
    """
    if resolution_s not in (60, 300):
        raise InputError(path=None, field="resolution_s", expected="60 or 300", got=resolution_s)
    unknown = set(sources) - {"loop", "camera", "probe", "radar"}
    if unknown or not sources:
        raise InputError(
            path=None, field="sources", expected="some of loop, probe, radar", got=sorted(unknown)
        )
    feeds = _read_feeds(source, window)
    geo = geometry or edge_geometry(net_file)
    use = set(sources)
    loops = _loop_estimates(feeds["loop"], feeds["sensors"], resolution_s) if "loop" in use else None
    radar = _radar_estimates(feeds["radar"], feeds["sensors"], resolution_s) if "radar" in use else None
    camera = _camera_estimates(feeds["camera"], feeds["sensors"], resolution_s) if "camera" in use else None
    probes = _probe_estimates(feeds["probe"], geo, resolution_s) if "probe" in use else None
    stamps = [
        _bucket(feeds[k]["measured_at"], resolution_s)
        for k in ("loop", "radar", "probe")
        if k in use and not feeds[k].empty
    ]
    if not stamps:
        raise InputError(path=None, field="feeds", expected=f"observations of {', '.join(sources)}")
    times = pd.DatetimeIndex(sorted(set(pd.concat(stamps).unique())), tz="UTC")
    grid = pd.MultiIndex.from_product([geo.edges["edge"], times], names=["edge", "interval_start"])
    st = pd.DataFrame(index=grid).reset_index().merge(geo.edges, on="edge", how="left")
    for part in (loops, radar, camera, probes):
        if part is not None and not part.empty:
            part = part.copy()
            part["interval_start"] = pd.to_datetime(part["interval_start"], utc=True)
            st = st.merge(part, on=["edge", "interval_start"], how="left")
    for col in ("loop_flow", "loop_speed", "loop_occ", "up_speed", "stop_speed", "up_occ", "stop_occ", "cam_queue", "cam_occ", "radar_flow", "radar_speed", "probe_speed",
                "probe_var", "n_probes", "probe_time_s", "probe_dist_m"):  # fmt: skip
        if col not in st:
            st[col] = np.nan
    vf = st["free_flow_kmh"].to_numpy()
    lanes = st["lanes"].to_numpy(dtype=float)
    loop_speed, loop_var = _spot_speed(
        st, vf, speed=st["loop_speed"], default_sd=LOOP_SPEED_SD,
        extra=[st["stop_speed"] / vf, st["stop_speed"].notna(), st["up_occ"] / 100.0, st["stop_occ"] / 100.0,
               st["cam_queue"], st["cam_occ"], st["loop_flow"] / lanes / 1000.0],
    )  # fmt: skip
    radar_speed, radar_var = _spot_speed(
        st, vf, speed=st["radar_speed"], extra=[st["radar_flow"] / lanes / 1000.0], default_sd=_RADAR_SPEED_SD
    )
    speeds, weights, names = [], [], []
    for name, v, var in (
        ("loop", loop_speed, loop_var),
        ("radar", radar_speed, radar_var),
        ("probe", st["probe_speed"].to_numpy(dtype=float), st["probe_var"].to_numpy()),
    ):
        w = np.where(np.isfinite(v) & np.isfinite(var), 1.0 / np.maximum(var, 1e-6), 0.0)
        speeds.append(np.nan_to_num(v))
        weights.append(w)
        names.append(name)
    w_sum = np.sum(weights, axis=0)
    speed = np.where(w_sum > 0, np.sum([s * w for s, w in zip(speeds, weights, strict=True)], axis=0)
                     / np.maximum(w_sum, 1e-12), np.nan)  # fmt: skip
    sd = np.where(w_sum > 0, 1.0 / np.sqrt(np.maximum(w_sum, 1e-12)), np.nan)
    st["sources"] = [
        "+".join(n for n, w in zip(names, ws, strict=True) if w > 0) for ws in zip(*weights, strict=True)
    ]
    if smooth:
        speed, sd, carried = _filter_in_time(st, speed / vf, sd / vf, resolution_s=resolution_s)
        speed, sd = speed * vf, sd * vf
        st.loc[carried, "sources"] = "history"
    confidence = np.clip(1.0 - sd / (0.5 * vf), 0.0, 1.0)
    st["speed_kmh"] = np.minimum(speed, vf * 1.1)
    st["confidence"] = confidence
    _fill_speed(st, geo)

    # Flow: loops (and radar) count it; elsewhere probes' distance driven / probe share (Edie).
    probe_share = _probe_share(st, resolution_s=resolution_s)
    length_km = st["length_m"].to_numpy() / 1000.0
    probe_flow = st["probe_dist_m"].to_numpy() / 1000.0 / (length_km * resolution_s / 3600.0) / probe_share
    counted = st["loop_flow"].to_numpy(dtype=float)
    if "radar" in use:
        counted = np.where(np.isfinite(counted), counted, st["radar_flow"].to_numpy(dtype=float))
    flow = np.where(np.isfinite(counted), counted, probe_flow)
    has_probe_data = "probe" in use and np.isfinite(probe_share)
    flow = np.where(np.isfinite(flow), flow, 0.0 if has_probe_data else np.nan)
    st["flow_veh_h"] = flow
    _fill_flow(st, geo)
    v = st["speed_kmh"].to_numpy()
    density = st["flow_veh_h"].to_numpy() / np.maximum(v, 1.0)
    occ_density = (
        st["loop_occ"].to_numpy(dtype=float) / 100.0 * 1000.0 / _VEHICLE_SPACE_M * st["lanes"].to_numpy()
    )
    density = np.where((v < QUEUE_SPEED_KMH) & np.isfinite(occ_density), occ_density, density)
    st["density_veh_km"] = density
    st["resolution_s"] = int(resolution_s)
    st["n_probes"] = st["n_probes"].fillna(0).astype(int)
    cols = [*STATE_COLUMNS, "free_flow_kmh", "sources", "n_probes"]
    return st[cols].sort_values(["interval_start", "edge"], kind="stable").reset_index(drop=True)


def _filter_in_time(
    st: pd.DataFrame, ratio: np.ndarray, sd: np.ndarray, *, resolution_s: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run a causal Kalman filter on each edge's speed ratio (a random walk) through the intervals.

    Each interval's fused measurement updates the edge's running estimate, whose variance grows by
    :data:`SPEED_DRIFT` per minute between intervals; only past and present data are used, so the
    estimate of an interval is the one the twin could have given at its end. Returns the filtered
    ratio, its standard deviation and a mask of rows carried from earlier intervals (no data now).
    """
    order = np.lexsort((st["interval_start"].to_numpy(), st["edge"].to_numpy()))
    times = st["interval_start"].nunique()
    n_edges = len(st) // max(times, 1)
    z = ratio[order].reshape(n_edges, times)
    r = (sd[order] ** 2).reshape(n_edges, times)
    q = SPEED_DRIFT**2 * resolution_s / 60.0
    x = np.full(n_edges, np.nan)
    p = np.full(n_edges, np.inf)
    out_x = np.full((n_edges, times), np.nan)
    out_p = np.full((n_edges, times), np.nan)
    carried = np.zeros((n_edges, times), dtype=bool)
    for t in range(times):
        p = p + q
        seen = np.isfinite(z[:, t]) & np.isfinite(r[:, t])
        fresh = seen & ~np.isfinite(x)
        x[fresh], p[fresh] = z[fresh, t], r[fresh, t]
        upd = seen & ~fresh
        k = p[upd] / (p[upd] + r[upd, t])
        x[upd] = x[upd] + k * (z[upd, t] - x[upd])
        p[upd] = (1.0 - k) * p[upd]
        out_x[:, t], out_p[:, t] = x, p
        carried[:, t] = ~seen & np.isfinite(x)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return out_x.ravel()[back], np.sqrt(out_p.ravel()[back]), carried.ravel()[back]


def _spot_speed(
    st: pd.DataFrame, vf: np.ndarray, *, speed: pd.Series, extra: list[pd.Series], default_sd: float
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a spot sensor's speed into an edge speed and its variance, learning the bias from probes.

    A spot speed at a signal approach misses the vehicles waiting at red. Where probes saw the same
    edge and interval, a weighted least-squares fit of the probes' speed ratio (speed / free-flow) on
    the sensor's speed ratio, occupancy and flow per lane corrects that bias; the variance is the fit's
    residual variance less the probes' own. Without enough probes the raw speed stands, with
    ``default_sd`` (a share of free-flow speed).
    """
    ratio = speed.to_numpy(dtype=float) / vf
    has = np.isfinite(ratio)
    feats = [np.ones_like(ratio), np.nan_to_num(ratio), has.astype(float)]
    feats += [np.nan_to_num(pd.Series(x).to_numpy(dtype=float)) for x in extra]
    x = np.column_stack(feats)
    present = has | np.isfinite(pd.Series(extra[-1]).to_numpy(dtype=float))
    label = st["probe_speed"].to_numpy(dtype=float) / vf
    label_var = st["probe_var"].to_numpy(dtype=float) / vf**2
    train = present & np.isfinite(label) & np.isfinite(label_var)
    raw = np.where(has, ratio * vf, np.nan)
    raw_var = np.where(has, (default_sd * vf) ** 2, np.nan)
    if train.sum() < 10 * x.shape[1]:
        return raw, raw_var
    w = 1.0 / np.maximum(label_var[train], 1e-4)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(x[train] * sw[:, None], label[train] * sw, rcond=None)
    pred = x @ coef
    # Each approach has its own bias (signal timing, length): a per-edge offset, shrunk to 0 when few
    # probes saw the edge.
    edge = st["edge"].to_numpy()
    res = pd.DataFrame({"edge": edge[train], "r": label[train] - pred[train], "w": w})
    per = res.groupby("edge").apply(lambda g: np.average(g["r"], weights=g["w"]), include_groups=False)
    n = res.groupby("edge").size()
    offset = (per * n / (n + _EDGE_SHRINK)).reindex(edge).fillna(0.0).to_numpy()
    pred = np.clip(pred + offset, 0.0, 1.1)
    resid = label[train] - pred[train]
    var = max(float(np.average(resid**2, weights=w)) - float(np.median(label_var[train])) / 2, 0.05**2)
    return np.where(present, pred * vf, np.nan), np.where(present, var * vf**2, np.nan)


def _probe_share(st: pd.DataFrame, *, resolution_s: int) -> float:
    """The share of vehicles that report (dropout included): probe flow / loop flow on counted edges.

    Probe flow is Edie's: the distance probes drove on an edge per its length (vehicles through it).
    """
    both = st[np.isfinite(st["loop_flow"]) & (st["loop_flow"] > 0)]
    probe = np.nansum(both["probe_dist_m"].to_numpy() / both["length_m"].to_numpy())
    loop = np.nansum(both["loop_flow"].to_numpy()) * resolution_s / 3600.0
    share = probe / loop if loop > 0 else np.nan
    return float(share) if np.isfinite(share) and share > 0 else float("nan")


def _neighbour_mean(st: pd.DataFrame, geo: EdgeGeometry, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each edge's neighbours in the same interval (NaN where none has one)."""
    edges = geo.edges["edge"].tolist()
    pos = {e: i for i, e in enumerate(edges)}
    src = np.array([pos[n] for e in edges for n in geo.neighbours[e]], dtype=np.int64)
    dst = np.array([pos[e] for e in edges for _ in geo.neighbours[e]], dtype=np.int64)
    table = st.assign(_v=values).pivot(index="interval_start", columns="edge", values="_v")[edges].to_numpy()
    total = np.zeros_like(table)
    count = np.zeros_like(table)
    ok = np.isfinite(table)
    if len(src):
        np.add.at(total.T, dst, np.where(ok, table, 0.0).T[src])
        np.add.at(count.T, dst, ok.T[src].astype(float))
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    frame = pd.DataFrame(mean, index=st["interval_start"].drop_duplicates().sort_values(), columns=edges)
    long = frame.stack(future_stack=True).rename("_m").reset_index()
    long.columns = ["interval_start", "edge", "_m"]
    return (
        st[["edge", "interval_start"]].merge(long, on=["edge", "interval_start"], how="left")["_m"].to_numpy()
    )


def _fill_speed(st: pd.DataFrame, geo: EdgeGeometry) -> None:
    vf = st["free_flow_kmh"].to_numpy()
    ratio = st["speed_kmh"].to_numpy() / vf
    missing = ~np.isfinite(ratio)
    if not missing.any():
        return
    near = _neighbour_mean(st, geo, ratio)
    zone = st.assign(_r=ratio).groupby("interval_start")["_r"].transform("median").to_numpy()
    zone = np.where(np.isfinite(zone), zone, 1.0)
    use_near = missing & np.isfinite(near)
    fill = np.where(use_near, near, zone)
    st.loc[missing, "speed_kmh"] = (fill * vf)[missing]
    st.loc[missing, "confidence"] = np.where(use_near, _CONF_NEIGHBOUR, _CONF_ZONE)[missing]
    st.loc[missing, "sources"] = np.where(use_near, "neighbours", "zone")[missing]


def _fill_flow(st: pd.DataFrame, geo: EdgeGeometry) -> None:
    flow = st["flow_veh_h"].to_numpy(dtype=float)
    missing = ~np.isfinite(flow)
    if not missing.any():
        return
    near = _neighbour_mean(st, geo, flow)
    zone = st.assign(_f=flow).groupby("interval_start")["_f"].transform("median").to_numpy()
    st.loc[missing, "flow_veh_h"] = np.where(np.isfinite(near), near, np.nan_to_num(zone))[missing]


# --- truth and scoring ----------------------------------------------------------------------------------


def truth_at(truth: pd.DataFrame | str | os.PathLike[str], *, resolution_s: int = 60) -> pd.DataFrame:
    """Return the ground truth (``RUN/truth/edges.parquet``) at ``resolution_s``.

    Flow and density are means over the interval; speed is their ratio (the space-mean speed over
    the whole interval), empty when no vehicle was on the edge.
    """
    df = truth if isinstance(truth, pd.DataFrame) else pd.read_parquet(Path(truth))
    df = df.assign(interval_start=_bucket(df["measured_at"], resolution_s))
    g = df.groupby(["edge_id", "interval_start"]).agg(
        flow_veh_h=("flow_veh_h", "mean"), density_veh_km=("density_veh_km", "mean"),
        speed_kmh=("speed_kmh", "mean"), n=("speed_kmh", "count"),
    )  # fmt: skip
    if resolution_s > 60:
        ratio = g["flow_veh_h"] / g["density_veh_km"].where(g["density_veh_km"] > 0)
        g["speed_kmh"] = ratio.where(g["n"] > 0)
    return g.drop(columns="n").reset_index().rename(columns={"edge_id": "edge"})


def score_state(
    estimate: pd.DataFrame, truth: pd.DataFrame, *, min_confidence: float = 0.0
) -> dict[str, float]:
    """Score an estimate against the ground truth of the same resolution (see :func:`truth_at`).

    Parameters
    ----------
    estimate
        The frame of :func:`estimate_state`.
    truth
        :func:`truth_at` of the run's ``truth/edges.parquet`` at the estimate's resolution.
    min_confidence
        Score only rows with at least this confidence.

    Returns
    -------
    dict
        ``speed_mae_kmh``, ``speed_rmse_kmh``, ``speed_mae_pct_free_flow`` (mean of |error| /
        free-flow speed, in %), ``flow_mae_veh_h``, ``flow_rmse_veh_h``, ``density_mae_veh_km``,
        ``density_rmse_veh_km``, ``rows`` (edge-intervals with a true speed) and ``coverage_pct``
        (share of them estimated from data rather than a fallback).
    """
    m = estimate.merge(truth, on=["edge", "interval_start"], suffixes=("", "_true"))
    m = m[m["confidence"] >= min_confidence]
    s = m[m["speed_kmh_true"].notna()]
    err = s["speed_kmh"] - s["speed_kmh_true"]
    fe = m["flow_veh_h"] - m["flow_veh_h_true"]
    de = m["density_veh_km"] - m["density_veh_km_true"]
    measured = ~s["sources"].isin(["neighbours", "zone"])

    def mae(x: pd.Series) -> float:
        return float(np.abs(x).mean()) if len(x) else float("nan")

    def rmse(x: pd.Series) -> float:
        return float(np.sqrt((x**2).mean())) if len(x) else float("nan")

    return {
        "speed_mae_kmh": mae(err),
        "speed_rmse_kmh": rmse(err),
        "speed_mae_pct_free_flow": 100.0 * mae(err / s["free_flow_kmh"]),
        "flow_mae_veh_h": mae(fe),
        "flow_rmse_veh_h": rmse(fe),
        "density_mae_veh_km": mae(de),
        "density_rmse_veh_km": rmse(de),
        "rows": float(len(s)),
        "coverage_pct": 100.0 * float(measured.mean()) if len(s) else float("nan"),
    }


# --- output ---------------------------------------------------------------------------------------------


def write_state(state: pd.DataFrame, *, run_dir: str | os.PathLike[str], store: Any = None) -> Path:
    """Write ``RUN/state/edges_{resolution}.parquet`` and, given a store, replace its rows in table ``state``.

    The store table holds :data:`STATE_COLUMNS`, keyed by (``edge``, ``interval_start``,
    ``resolution_s``); rows of the same key are replaced, so estimating again adds nothing.
    """
    from roadtwin._io import atomic_path

    if state.empty:
        raise InputError(path=None, field="state", expected="at least one estimated row")
    res = int(state["resolution_s"].iloc[0])
    target = Path(run_dir) / "state" / f"edges_{res}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        state.to_parquet(tmp, index=False)
    if store is not None:
        con = store.con
        cols = ", ".join(f"{c} {t}" for c, t in STATE_COLUMNS.items())
        con.execute(
            f"CREATE TABLE IF NOT EXISTS state ({cols}, PRIMARY KEY (edge, interval_start, resolution_s))"
        )
        con.register("_state", state[list(STATE_COLUMNS)])
        try:
            con.execute(f"INSERT OR REPLACE INTO state SELECT {', '.join(STATE_COLUMNS)} FROM _state")
        finally:
            con.unregister("_state")
    return target
