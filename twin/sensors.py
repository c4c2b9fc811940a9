"""Sensors: where they stand in the zone, and the feeds they would have produced during a run.

Placement is derived from the network alone, so sensor ids survive a rebuild:

- ``loop:{lane}:stop`` and ``loop:{lane}:up``: induction loops on every vehicle lane that ends at a
  signal, 1 m before the stop line and ``min(80 m, half the lane)`` upstream (lanes under 20 m get
  the stop-line loop only);
- ``cam:{edge}``: a camera over the last 80 m of every signal approach (one lane-area detector per
  vehicle lane, reported per approach);
- ``radar:{edge}``: a speed radar across all vehicle lanes at the middle of every road edge of 20 m
  or more.

:func:`sense` re-simulates a run's exact inputs (same seed, same traffic) with SUMO's own
detectors (E1 loops, E2 lane-area detectors, edgeData for the ground truth, all written as Parquet
by SUMO) and its native FCD Parquet output for the probe vehicles, then turns them into the
feeds of :mod:`roadtwin.twin.schemas` under ``RUN/feeds/`` and the ground truth under ``RUN/truth/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from roadtwin._io import atomic_dir, write_json
from roadtwin.errors import InputError
from roadtwin.twin.schemas import (
    FEED_KINDS,
    SCHEMAS,
    SENSORS_SCHEMA,
    TIMESTAMP,
    TRUTH_EDGES_SCHEMA,
    TRUTH_PROBES_SCHEMA,
)

__all__ = [
    "DEFAULT_TIMEZONE",
    "ProbeModel",
    "SenseResult",
    "SensorModel",
    "placement",
    "reference_day",
    "sense",
    "sim_time_to_utc",
    "write_detectors",
    "write_feed",
]

#: The zone's local time: scenario times of day are wall-clock times here.
DEFAULT_TIMEZONE = "Asia/Shanghai"

_VEHICLE_CLASSES = ("passenger", "bus", "truck", "delivery", "taxi")
_STOP_OFFSET_M = 1.0
_UPSTREAM_M = 80.0
_MIN_LANE_M = 20.0
_CAMERA_RANGE_M = 80.0


@dataclass(frozen=True)
class ProbeModel:
    """Connected-vehicle probes: who reports, how often, how well.

    Attributes
    ----------
    penetration
        Share of vehicles that are probes (chosen by a hash of the vehicle id and ``seed``).
    gps_noise_m
        Standard deviation in m of the Gaussian position error, east and north (times the
        weather's sensor-noise factor).
    interval_s
        Seconds between two reports of one probe (each probe has its own phase).
    dropout
        Probability that a report is lost.
    latency_s, latency_jitter_s
        ``received_at = measured_at + latency_s + Exp(latency_jitter_s)``: reports arrive late and
        out of order.
    """

    penetration: float = 0.1
    gps_noise_m: float = 5.0
    interval_s: int = 5
    dropout: float = 0.02
    latency_s: float = 2.0
    latency_jitter_s: float = 1.0


@dataclass(frozen=True)
class SensorModel:
    """All sensor parameters of :func:`sense`.

    Attributes
    ----------
    probe
        The probe-vehicle model.
    period_s
        Aggregation period of the roadside sensors (loops, cameras, radar).
    radar_noise_kmh
        Standard deviation of the radar's speed error (times the weather's sensor-noise factor).
    camera_range_m
        Nominal length of a camera's field of view (times the weather's sensor-range factor).
    seed
        Seed of the probe choice and of every noise draw.
    day
        The calendar day the run's times of day fall on; ``None``: the day before the run was made,
        so every timestamp lies in the past.
    timezone
        The zone's time zone (IANA name).
    """

    probe: ProbeModel = field(default_factory=ProbeModel)
    period_s: int = 60
    radar_noise_kmh: float = 2.0
    camera_range_m: float = _CAMERA_RANGE_M
    seed: int = 0
    day: dt.date | None = None
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True)
class SenseResult:
    """What :func:`sense` wrote: folders, rows per feed and timing."""

    feeds_dir: Path
    truth_dir: Path
    rows: dict[str, int]
    day: dt.date
    wall_time_s: float


# --- placement ------------------------------------------------------------------------------------------


def _is_vehicle_lane(lane: Any) -> bool:
    return any(lane.allows(c) for c in _VEHICLE_CLASSES)


def _lonlat(net: Any, lane: Any, pos: float) -> tuple[float, float]:
    from sumolib.geomhelper import positionAtShapeOffset

    x, y = positionAtShapeOffset(lane.getShape(), pos)
    lon, lat = net.convertXY2LonLat(x, y)
    return float(lon), float(lat)


def placement(net_file: str | Path) -> pd.DataFrame:
    """Return the sensor registry of a network (columns of :data:`SENSORS_SCHEMA`), sorted by id.

    Parameters
    ----------
    net_file
        A SUMO network with a geo-projection.

    Returns
    -------
    pandas.DataFrame
        One row per sensor: ``sensor_id``, ``kind`` (``loop``, ``camera``, ``radar``), ``edge_id``,
        ``lane_id`` (loops only), ``lanes`` (lanes covered), ``pos_m`` (from the start of the lane;
        the downstream end for cameras), ``length_m`` (detection zone) and ``lon_deg``/``lat_deg``.
    """
    from roadtwin.maps.network import load_net

    net = load_net(net_file)
    rows: list[dict[str, Any]] = []
    for edge in net.getEdges(withInternal=False):
        if edge.getFunction() != "":
            continue
        lanes = [lane for lane in edge.getLanes() if _is_vehicle_lane(lane)]
        if not lanes:
            continue
        eid = edge.getID()
        length = min(lane.getLength() for lane in lanes)
        signal = edge.getToNode().getType().startswith("traffic_light")
        if signal:
            for lane in lanes:
                lid, ll = lane.getID(), lane.getLength()
                stop = max(ll - _STOP_OFFSET_M, 0.1)
                lon, lat = _lonlat(net, lane, stop)
                rows.append(dict(sensor_id=f"loop:{lid}:stop", kind="loop", edge_id=eid, lane_id=lid,
                                 lanes=1, pos_m=stop, length_m=0.0, lon_deg=lon, lat_deg=lat))  # fmt: skip
                if ll >= _MIN_LANE_M:
                    up = ll - min(_UPSTREAM_M, ll / 2)
                    lon, lat = _lonlat(net, lane, up)
                    rows.append(dict(sensor_id=f"loop:{lid}:up", kind="loop", edge_id=eid, lane_id=lid,
                                     lanes=1, pos_m=up, length_m=0.0, lon_deg=lon, lat_deg=lat))  # fmt: skip
            lon, lat = _lonlat(net, lanes[0], max(length - _STOP_OFFSET_M, 0.1))
            rows.append(dict(sensor_id=f"cam:{eid}", kind="camera", edge_id=eid, lane_id=None, lanes=len(lanes),
                             pos_m=length, length_m=min(_CAMERA_RANGE_M, length), lon_deg=lon, lat_deg=lat))  # fmt: skip
        if length >= _MIN_LANE_M:
            lon, lat = _lonlat(net, lanes[0], length / 2)
            rows.append(dict(sensor_id=f"radar:{eid}", kind="radar", edge_id=eid, lane_id=None, lanes=len(lanes),
                             pos_m=length / 2, length_m=0.0, lon_deg=lon, lat_deg=lat))  # fmt: skip
    frame = pd.DataFrame(rows, columns=SENSORS_SCHEMA.names)
    return frame.sort_values("sensor_id", kind="stable").reset_index(drop=True)


def write_detectors(
    net_file: str | Path,
    path: str | Path,
    *,
    sensors: pd.DataFrame,
    period_s: int = 60,
    range_factor: float = 1.0,
) -> Path:
    """Write SUMO's detectors for ``sensors`` (and the per-edge ground truth) as an additional file.

    SUMO writes ``loops.parquet``, ``cameras.parquet``, ``radars.parquet`` and ``truth.parquet``
    beside ``path``. Cameras and radars get one detector per vehicle lane, id ``{sensor}:{lane index}``.
    """
    from roadtwin.maps.network import load_net

    net = load_net(net_file)
    out = [f'<additional>\n    <edgeData id="truth" period="{period_s}" file="truth.parquet"/>']
    for row in sensors.itertuples(index=False):
        if row.kind == "loop":
            out.append(
                f"    <inductionLoop id={quoteattr(row.sensor_id)} lane={quoteattr(row.lane_id)} "
                f'pos="{row.pos_m:.2f}" period="{period_s}" file="loops.parquet" friendlyPos="true"/>'
            )
            continue
        lanes = [lane for lane in net.getEdge(row.edge_id).getLanes() if _is_vehicle_lane(lane)]
        for lane in lanes:
            ident = quoteattr(f"{row.sensor_id}:{lane.getIndex()}")
            ll = lane.getLength()
            if row.kind == "camera":
                span = max(min(row.length_m * range_factor, ll - 0.2), 1.0)
                out.append(
                    f"    <laneAreaDetector id={ident} lane={quoteattr(lane.getID())} "
                    f'endPos="{ll - 0.1:.2f}" length="{span:.2f}" period="{period_s}" '
                    f'file="cameras.parquet" friendlyPos="true"/>'
                )
            else:
                out.append(
                    f'    <inductionLoop id={ident} lane={quoteattr(lane.getID())} pos="{ll / 2:.2f}" '
                    f'period="{period_s}" file="radars.parquet" friendlyPos="true"/>'
                )
    out.append("</additional>\n")
    target = Path(path)
    target.write_text("\n".join(out), encoding="utf-8")
    return target


# --- time ----------------------------------------------------------------------------------------------

_RUN_STAMP = re.compile(r"__(\d{8})-\d{6}(?:-\d+)?$")


def reference_day(run_dir: Path) -> dt.date:
    """The default day of a run's feeds: the day before the run was made (from its id or its config)."""
    m = _RUN_STAMP.search(run_dir.name)
    if m:
        made = dt.datetime.strptime(m[1], "%Y%m%d").date()
    else:
        made = dt.date.fromtimestamp((run_dir / "config.yaml").stat().st_mtime)
    return made - dt.timedelta(days=1)


def _midnight_ms(day: dt.date, timezone: str) -> int:
    from zoneinfo import ZoneInfo

    try:
        tz = ZoneInfo(timezone)
    except Exception:
        raise InputError(
            path=None, field="timezone", expected="an IANA time zone name", got=timezone
        ) from None
    return round(dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp() * 1000)


def sim_time_to_utc(seconds: Any, *, day: dt.date, timezone: str = DEFAULT_TIMEZONE) -> pa.Array:
    """Turn simulation times (seconds after local midnight of ``day``) into UTC timestamps (ms)."""
    ms = _midnight_ms(day, timezone) + np.round(np.asarray(seconds, dtype=np.float64) * 1000).astype(np.int64)
    return pa.array(ms, type=pa.int64()).cast(TIMESTAMP)


# --- output --------------------------------------------------------------------------------------------


def write_feed(table: pa.Table, folder: Path, name: str) -> None:
    """Write ``table`` as ``folder/name.parquet`` and ``folder/name.csv`` (timestamps as ISO 8601 UTC)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(table, folder / f"{name}.parquet", compression="zstd")
    columns = []
    for col, fld in zip(table.columns, table.schema, strict=True):
        if pa.types.is_timestamp(fld.type):
            col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(col)
    pacsv.write_csv(pa.table(columns, names=table.column_names), folder / f"{name}.csv")


# --- sense ---------------------------------------------------------------------------------------------


def _hash_unit(seed: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _probe_id(seed: int, vehicle: str) -> str:
    return "probe:" + hashlib.blake2b(f"probe:{seed}:{vehicle}".encode(), digest_size=6).hexdigest()


def _vehicle_ids(route_files: tuple[Path, ...]) -> list[str]:
    from lxml import etree

    ids: list[str] = []
    for path in route_files:
        for _, el in etree.iterparse(str(path), events=("end",), tag=("vehicle", "trip")):
            ids.append(el.get("id"))
            el.clear()
    return ids


def _load_run(run_dir: Path) -> tuple[dict[str, Any], Any]:
    """Return the run's config and the :class:`SimInputs` that reproduce its traffic."""
    import yaml

    from roadtwin.sim.inputs import SimInputs
    from roadtwin.sim.pedestrians import pedestrian_options
    from roadtwin.sim.scenario import parse_time

    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise InputError(path=run_dir, field="config.yaml", expected="a run folder (roadtwin sim run)")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    sc, run = cfg.get("scenario"), cfg.get("run") or {}
    if not isinstance(sc, dict):
        raise InputError(path=cfg_path, field="scenario", expected="the run of a RoadTwin scenario")
    inputs_dir = run_dir / "inputs"
    vehicles = inputs_dir / "vehicles.rou.xml"
    if not vehicles.is_file():
        raise InputError(path=inputs_dir, field="vehicles.rou.xml", expected="the run's route file")
    net_file = Path(str(run.get("network_file", "")))
    if not net_file.is_file():
        from roadtwin.maps.build import network_for
        from roadtwin.workspace import Workspace

        net_file = network_for(workspace=Workspace.at(run_dir.parent.parent), name=str(sc.get("network")))
    routes = [vehicles]
    extra = ["--step-length", f"{float(sc.get('step_length', 1.0)):g}"]
    if (inputs_dir / "persons.rou.xml").is_file():
        routes.append(inputs_dir / "persons.rou.xml")
        extra.extend(pedestrian_options())
    adds = [p for p in (inputs_dir / "vtypes.add.xml", inputs_dir / "incidents.add.xml") if p.is_file()]
    if (inputs_dir / "incidents.add.xml").is_file():
        extra.append("--ignore-route-errors")
    inputs = SimInputs(
        net_file=net_file,
        route_files=tuple(routes),
        additional_files=tuple(adds),
        begin=parse_time(sc["begin"]),
        end=parse_time(sc["end"]),
        seed=int(run.get("seed", sc.get("seed", 42))),
        extra_args=tuple(extra),
    )
    return cfg, inputs


def _lane_sensor(ids: pa.ChunkedArray) -> pa.Array:
    """``cam:E:2`` -> ``cam:E`` (a per-lane detector id to its sensor id)."""
    return pc.replace_substring_regex(ids, pattern=r":\d+$", replacement="")


def _roadside(
    work: Path, *, day: dt.date, tz: str, rng: np.random.Generator, model: SensorModel, noise: float
) -> dict[str, pa.Table]:
    import duckdb

    con = duckdb.connect()

    def q(sql: str) -> pa.Table:
        return con.sql(sql).to_arrow_table()

    def stamp(t: pa.Table) -> pa.Table:
        at = sim_time_to_utc(t.column("begin_s").to_numpy(), day=day, timezone=tz)
        return t.set_column(t.schema.get_field_index("begin_s"), "measured_at", at)

    loops = q(f"""SELECT interval_id AS sensor_id, interval_begin::DOUBLE AS begin_s,
        (interval_end - interval_begin)::INTEGER AS interval_s, interval_nVehContrib AS count_veh,
        greatest(interval_occupancy, 0)::DOUBLE AS occupancy_pct,
        CASE WHEN interval_nVehContrib > 0 THEN interval_speed * 3.6 END::DOUBLE AS speed_kmh
        FROM read_parquet('{work / "loops.parquet"}') ORDER BY begin_s, sensor_id""")
    cams = q(f"""SELECT regexp_replace(interval_id, ':\\d+$', '') AS sensor_id, interval_begin::DOUBLE AS begin_s,
        any_value((interval_end - interval_begin)::INTEGER) AS interval_s,
        sum(interval_nVehSeen)::INTEGER AS count_veh,
        max(greatest(interval_maxJamLengthInMeters, 0))::DOUBLE AS queue_m,
        sum(greatest(interval_maxJamLengthInVehicles, 0))::INTEGER AS queue_veh,
        avg(greatest(interval_meanOccupancy, 0))::DOUBLE AS occupancy_pct
        FROM read_parquet('{work / "cameras.parquet"}') GROUP BY ALL ORDER BY begin_s, sensor_id""")
    radar = q(f"""SELECT regexp_replace(interval_id, ':\\d+$', '') AS sensor_id, interval_begin::DOUBLE AS begin_s,
        any_value((interval_end - interval_begin)::INTEGER) AS interval_s,
        sum(interval_nVehContrib)::INTEGER AS count_veh,
        (sum(CASE WHEN interval_nVehContrib > 0 THEN interval_speed * interval_nVehContrib END)
            / nullif(sum(interval_nVehContrib), 0) * 3.6)::DOUBLE AS speed_kmh
        FROM read_parquet('{work / "radars.parquet"}') GROUP BY ALL ORDER BY begin_s, sensor_id""")
    speed = radar.column("speed_kmh").to_numpy(zero_copy_only=False)
    noisy = np.clip(speed + rng.normal(0.0, model.radar_noise_kmh * noise, len(speed)), 0.0, 250.0)
    radar = radar.set_column(radar.schema.get_field_index("speed_kmh"), "speed_kmh",
                             pa.array(noisy, mask=np.isnan(speed)))  # fmt: skip
    truth = q(f"""SELECT edge_id, interval_begin::DOUBLE AS begin_s,
        (interval_end::DOUBLE - interval_begin::DOUBLE)::INTEGER AS interval_s,
        CASE WHEN edge_sampledSeconds > 0 THEN edge_speed * 3.6 END::DOUBLE AS speed_kmh,
        coalesce(edge_density * edge_speed * 3.6, 0)::DOUBLE AS flow_veh_h,
        coalesce(edge_density, 0)::DOUBLE AS density_veh_km,
        coalesce(edge_occupancy, 0)::DOUBLE AS occupancy_pct,
        coalesce(edge_entered, 0)::INTEGER AS entered_veh, coalesce(edge_left, 0)::INTEGER AS left_veh,
        CASE WHEN edge_sampledSeconds > 0 THEN edge_traveltime END::DOUBLE AS travel_time_s
        FROM read_parquet('{work / "truth.parquet"}') WHERE edge_id IS NOT NULL AND edge_id NOT LIKE ':%'
        ORDER BY begin_s, edge_id""")
    out = {"loop": stamp(loops), "camera": stamp(cams), "radar": stamp(radar), "truth_edges": stamp(truth)}
    con.close()
    return {k: t.cast(SCHEMAS.get(k, TRUTH_EDGES_SCHEMA)) for k, t in out.items()}


def _probes(
    fcd: Path, *, begin: float, day: dt.date, tz: str, model: SensorModel, noise: float
) -> tuple[pa.Table, pa.Table]:
    import pyarrow.parquet as pq

    p = model.probe
    empty = (SCHEMAS["probe"].empty_table(), TRUTH_PROBES_SCHEMA.empty_table())
    if not fcd.is_file():
        return empty
    t = pq.read_table(fcd, columns=["timestep_time", "vehicle_id", "vehicle_x", "vehicle_y",
                                    "vehicle_speed", "vehicle_angle"])  # fmt: skip
    t = t.filter(pc.is_valid(t.column("vehicle_id")))
    if t.num_rows == 0:
        return empty
    df = t.to_pandas()
    interval = max(int(p.interval_s), 1)
    vehicles = df["vehicle_id"].unique()
    phase = {v: int(_hash_unit(model.seed + 1, v) * interval) for v in vehicles}
    tick = np.floor(df["timestep_time"].to_numpy() - begin + 1e-6).astype(np.int64)
    keep = (tick % interval) == df["vehicle_id"].map(phase).to_numpy()
    df = df[keep].reset_index(drop=True)
    rng = np.random.default_rng([model.seed, 7])
    n = len(df)
    lat0 = df["vehicle_y"].to_numpy()
    sigma = p.gps_noise_m * noise
    east, north = rng.normal(0.0, sigma, n), rng.normal(0.0, sigma, n)
    lat = lat0 + north / 111_320.0
    lon = df["vehicle_x"].to_numpy() + east / (111_320.0 * np.cos(np.radians(lat0)))
    reported = rng.random(n) >= p.dropout
    latency = p.latency_s + (rng.exponential(p.latency_jitter_s, n) if p.latency_jitter_s > 0 else 0.0)
    ids = df["vehicle_id"].map({v: _probe_id(model.seed, v) for v in vehicles}).to_numpy()
    t_s = df["timestep_time"].to_numpy()
    measured = sim_time_to_utc(t_s, day=day, timezone=tz)
    received = sim_time_to_utc(t_s + latency, day=day, timezone=tz)
    speed = df["vehicle_speed"].to_numpy().astype(np.float64) * 3.6
    heading = np.mod(df["vehicle_angle"].to_numpy().astype(np.float64), 360.0)
    truth = pa.table(
        [pa.array(ids), pa.array(df["vehicle_id"].to_numpy()), measured, pa.array(df["vehicle_x"].to_numpy()),
         pa.array(lat0), pa.array(speed), pa.array(heading), pa.array(reported)],
        schema=TRUTH_PROBES_SCHEMA,
    )  # fmt: skip
    feed = pa.table(
        [pa.array(ids), measured, received, pa.array(lon), pa.array(lat), pa.array(speed), pa.array(heading)],
        schema=SCHEMAS["probe"],
    ).filter(pa.array(reported))
    # Reports are stored in arrival order: measured_at is out of order, as a real feed would be.
    feed = feed.sort_by([("received_at", "ascending"), ("probe_id", "ascending")])
    return feed, truth


def sense(
    run_dir: str | Path,
    *,
    model: SensorModel | None = None,
    progress: Any = False,
) -> SenseResult:
    """Write the sensor feeds and ground truth of a run (``RUN/feeds/``, ``RUN/truth/``).

    Parameters
    ----------
    run_dir
        A run folder written by ``roadtwin sim run`` (its ``config.yaml`` and ``inputs/``).
    model
        Sensor parameters; defaults to :class:`SensorModel` ().
    progress
        As for :func:`roadtwin.sim.run.simulate`: a progress bar (``True``), none, or a callback.

    Returns
    -------
    SenseResult
        The folders written and the rows per feed.

    Raises
    ------
    InputError
        ``run_dir`` is not a run folder of a RoadTwin scenario.
    """
    from roadtwin.sim.run import simulate
    from roadtwin.sim.weather import weather_effect

    model = model or SensorModel()
    p = model.probe
    for name, value, lo, hi in (("penetration", p.penetration, 0, 1), ("dropout", p.dropout, 0, 1)):
        if not (math.isfinite(value) and lo <= value <= hi):
            raise InputError(path=None, field=name, expected=f"a share between {lo} and {hi}", got=value)
    for name, value in (
        ("gps_noise_m", p.gps_noise_m),
        ("latency_s", p.latency_s),
        ("radar_noise_kmh", model.radar_noise_kmh),
    ):
        if not (math.isfinite(value) and value >= 0):
            raise InputError(path=None, field=name, expected="a number >= 0", got=value)
    run = Path(run_dir)
    t0 = time.perf_counter()
    cfg, inputs = _load_run(run)
    controller = (cfg.get("run") or {}).get("controller") or "fixed"
    if controller != "fixed":
        # The replay has no controller (twin does not import agents): its feeds would not be this run's.
        raise InputError(
            path=run / "config.yaml",
            field="run.controller",
            expected="a run under the network's own signal programs (fixed); sense replays without a controller",
            got=controller,
        )
    weather = cfg["scenario"].get("weather") or {}
    effect = weather_effect(weather.get("condition", "clear"), weather.get("intensity"))
    day = model.day or reference_day(run)
    sensors = placement(inputs.net_file)
    work = run / ".sense-work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        add = write_detectors(inputs.net_file, work / "sensors.add.xml", sensors=sensors,
                              period_s=model.period_s, range_factor=effect.sensor_range)  # fmt: skip
        extra = [*inputs.extra_args]
        chosen = [v for v in _vehicle_ids(inputs.route_files) if _hash_unit(model.seed, v) < p.penetration]
        if chosen:
            extra += ["--fcd-output", str(work / "fcd.parquet"), "--fcd-output.geo", "true",
                      "--fcd-output.attributes", "id,x,y,speed,angle", "--device.fcd.period", "1",
                      "--device.fcd.explicit", ",".join(chosen),
                      # walkers are not connected vehicles (and would break the vehicle columns)
                      "--person-device.fcd.probability", "0"]  # fmt: skip
        sim_inputs = dataclasses.replace(
            inputs, additional_files=(*inputs.additional_files, add), extra_args=tuple(extra)
        )
        simulate(sim_inputs, out_dir=work, progress=progress)
        rng = np.random.default_rng([model.seed, 3])
        tables = _roadside(work, day=day, tz=model.timezone, rng=rng, model=model, noise=effect.sensor_noise)
        probe, probe_truth = _probes(work / "fcd.parquet", begin=inputs.begin, day=day, tz=model.timezone,
                                     model=model, noise=effect.sensor_noise)  # fmt: skip
        tables["probe"] = probe
        sensor_table = pa.Table.from_pandas(sensors, schema=SENSORS_SCHEMA, preserve_index=False)
        rows = {k: tables[k].num_rows for k in FEED_KINDS}
        with atomic_dir(run / "truth") as tmp:
            write_feed(tables["truth_edges"], tmp, "edges")
            write_feed(probe_truth, tmp, "probes")
        with atomic_dir(run / "feeds") as tmp:
            for kind in FEED_KINDS:
                write_feed(tables[kind], tmp, kind)
            write_feed(sensor_table, tmp, "sensors")
            write_json(tmp / "manifest.json", {
                "run": run.name, "day": day.isoformat(), "timezone": model.timezone,
                "controller_replayed": "the network's own signal programs",
                "run_controller": (cfg.get("run") or {}).get("controller"),
                "weather": {"condition": effect.condition, "intensity": effect.intensity,
                            "sensor_noise": effect.sensor_noise, "sensor_range": effect.sensor_range},
                "model": json.loads(json.dumps(dataclasses.asdict(model), default=str)),
                "probe_vehicles": len(chosen), "rows": rows, "sensors": len(sensors),
            })  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SenseResult(
        feeds_dir=run / "feeds", truth_dir=run / "truth", rows=rows, day=day,
        wall_time_s=time.perf_counter() - t0,
    )  # fmt: skip
