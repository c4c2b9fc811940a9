"""The feed formats: one schema per sensor kind, with units in the column names.

Every feed is a flat table (Parquet, or CSV with a header line) of one sensor kind. Timestamps are
UTC (``timestamp[ms, tz=UTC]`` in Parquet, ISO 8601 with ``Z`` in CSV); a roadside row covers the
aggregation interval ``[measured_at, measured_at + interval_s)``. Units are in the column names:
``_kmh`` km/h, ``_pct`` percent (0-100), ``_veh`` vehicles, ``_m`` metres, ``_deg`` degrees
(WGS84 lon/lat; headings clockwise from north), ``_s`` seconds. ``twin/FEEDS.md`` documents each
column; :data:`FIELDS` holds the validation rules that :mod:`roadtwin.twin.store` applies to every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

__all__ = [
    "FEED_KINDS",
    "FIELDS",
    "KEYS",
    "SCHEMAS",
    "SENSORS_SCHEMA",
    "TIMESTAMP",
    "TRUTH_EDGES_SCHEMA",
    "TRUTH_PROBES_SCHEMA",
    "FeedKind",
    "Field",
    "closest_kind",
    "detect_kind",
]

FeedKind = Literal["loop", "camera", "radar", "probe"]

#: The sensor kinds, in the order feeds are written and documented.
FEED_KINDS: tuple[FeedKind, ...] = ("loop", "camera", "radar", "probe")

#: Every timestamp column: milliseconds, UTC.
TIMESTAMP = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True)
class Field:
    """A feed column and the range a valid value lies in.

    Attributes
    ----------
    name
        The column name (its unit is the suffix).
    type
        ``"id"`` (non-empty text), ``"time"`` (a UTC timestamp), ``"int"`` or ``"float"``.
    low, high
        Inclusive bounds of a valid value (``None``: unbounded).
    nullable
        Whether an empty value is valid (e.g. a speed when no vehicle passed).
    """

    name: str
    type: Literal["id", "time", "int", "float"]
    low: float | None = None
    high: float | None = None
    nullable: bool = False


_SPEED = (0.0, 250.0)
_INTERVAL = Field("interval_s", "int", 1, 3600)

#: Validation rules per kind, in column order (the order of :data:`SCHEMAS`).
FIELDS: dict[str, tuple[Field, ...]] = {
    "loop": (
        Field("sensor_id", "id"),
        Field("measured_at", "time"),
        _INTERVAL,
        Field("count_veh", "int", 0, 10_000),
        Field("occupancy_pct", "float", 0, 100),
        Field("speed_kmh", "float", *_SPEED, nullable=True),
    ),
    "camera": (
        Field("sensor_id", "id"),
        Field("measured_at", "time"),
        _INTERVAL,
        Field("count_veh", "int", 0, 10_000),
        Field("queue_m", "float", 0, 10_000),
        Field("queue_veh", "int", 0, 10_000),
        Field("occupancy_pct", "float", 0, 100),
    ),
    "radar": (
        Field("sensor_id", "id"),
        Field("measured_at", "time"),
        _INTERVAL,
        Field("count_veh", "int", 0, 10_000),
        Field("speed_kmh", "float", *_SPEED, nullable=True),
    ),
    "probe": (
        Field("probe_id", "id"),
        Field("measured_at", "time"),
        Field("received_at", "time"),
        Field("lon_deg", "float", -180, 180),
        Field("lat_deg", "float", -90, 90),
        Field("speed_kmh", "float", *_SPEED),
        Field("heading_deg", "float", 0, 360),
    ),
}

#: The primary key of each kind: one observation per sensor (or probe) and time.
KEYS: dict[str, tuple[str, str]] = {
    "loop": ("sensor_id", "measured_at"),
    "camera": ("sensor_id", "measured_at"),
    "radar": ("sensor_id", "measured_at"),
    "probe": ("probe_id", "measured_at"),
}

_ARROW = {"id": pa.string(), "time": TIMESTAMP, "int": pa.int32(), "float": pa.float64()}

#: The Parquet schema of each feed kind.
SCHEMAS: dict[str, pa.Schema] = {
    kind: pa.schema([pa.field(f.name, _ARROW[f.type], nullable=f.nullable) for f in fields])
    for kind, fields in FIELDS.items()
}

#: The sensor registry (``feeds/sensors.parquet``): where each roadside sensor is.
SENSORS_SCHEMA = pa.schema(
    [
        pa.field("sensor_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("edge_id", pa.string(), nullable=False),
        pa.field("lane_id", pa.string()),
        pa.field("lanes", pa.int32(), nullable=False),
        pa.field("pos_m", pa.float64(), nullable=False),
        pa.field("length_m", pa.float64(), nullable=False),
        pa.field("lon_deg", pa.float64(), nullable=False),
        pa.field("lat_deg", pa.float64(), nullable=False),
    ]
)

#: Ground truth per edge and minute (``truth/edges.parquet``), from SUMO's edgeData.
TRUTH_EDGES_SCHEMA = pa.schema(
    [
        pa.field("edge_id", pa.string(), nullable=False),
        pa.field("measured_at", TIMESTAMP, nullable=False),
        pa.field("interval_s", pa.int32(), nullable=False),
        pa.field("speed_kmh", pa.float64()),
        pa.field("flow_veh_h", pa.float64()),
        pa.field("density_veh_km", pa.float64()),
        pa.field("occupancy_pct", pa.float64()),
        pa.field("entered_veh", pa.int32()),
        pa.field("left_veh", pa.int32()),
        pa.field("travel_time_s", pa.float64()),
    ]
)

#: Ground truth of every probe report before noise, dropout and latency (``truth/probes.parquet``).
TRUTH_PROBES_SCHEMA = pa.schema(
    [
        pa.field("probe_id", pa.string(), nullable=False),
        pa.field("vehicle_id", pa.string(), nullable=False),
        pa.field("measured_at", TIMESTAMP, nullable=False),
        pa.field("lon_deg", pa.float64(), nullable=False),
        pa.field("lat_deg", pa.float64(), nullable=False),
        pa.field("speed_kmh", pa.float64(), nullable=False),
        pa.field("heading_deg", pa.float64(), nullable=False),
        pa.field("reported", pa.bool_(), nullable=False),
    ]
)


def detect_kind(columns: list[str]) -> str | None:
    """Return the kind whose columns ``columns`` holds (``"sensors"`` for a registry), else ``None``.

    A file belongs to the kind with the most columns it holds in full; extra columns are allowed.
    """
    have = set(columns)
    if {f.name for f in SENSORS_SCHEMA} <= have:
        return "sensors"
    best = [k for k in FIELDS if {f.name for f in FIELDS[k]} <= have]
    return max(best, key=lambda k: len(FIELDS[k])) if best else None


def closest_kind(columns: list[str]) -> tuple[str, list[str]]:
    """Return the kind ``columns`` comes nearest to and the columns it lacks for it."""
    have = set(columns)
    scored = [(len({f.name for f in FIELDS[k]} & have), k) for k in FIELDS]
    kind = max(scored)[1]
    return kind, [f.name for f in FIELDS[kind] if f.name not in have]
