"""The twin's store: one DuckDB file in the workspace, and validated, idempotent ingestion into it.

Tables
------
``sensors``
    The sensor registry (``feeds/sensors.parquet``); roadside rows must name a sensor in it.
``obs_loop``, ``obs_camera``, ``obs_radar``, ``obs_probe``
    Observations, one per key (``sensor_id`` or ``probe_id``, ``measured_at``); columns as in
    :data:`roadtwin.twin.schemas.SCHEMAS`, plus ``file_id`` (the file it came from).
``quarantine``
    Every rejected row: source file, row number (1-based, data rows), the raw row as JSON, the reason.
``ingested_files``
    One row per ingested file (by SHA-256 of its bytes): rows inserted, duplicate, quarantined.

Guarantees of :func:`ingest`: every row of a file is either inserted, recognised as a duplicate of a
stored observation (same key; the stored one wins) or quarantined with its reason; re-ingesting a
file (same bytes) adds nothing; rows arriving late or out of order land at their key (read them back
in time order with :meth:`Store.observations`); each file is ingested in one transaction, so a crash
or a kill mid-file leaves the store as it was before that file. A file that cannot be read as a feed
at all (not Parquet or CSV, truncated, missing or mistyped columns) raises a one-line
:class:`~roadtwin.errors.InputError` naming the file and the field, and changes nothing.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from roadtwin._io import sha256_file
from roadtwin.errors import InputError
from roadtwin.twin.schemas import (
    FIELDS,
    KEYS,
    SENSORS_SCHEMA,
    Field,
    closest_kind,
    detect_kind,
)

__all__ = [
    "MIN_TIME",
    "FileReport",
    "IngestReport",
    "Store",
    "ingest",
]

#: Observations before this instant are rejected as implausible.
MIN_TIME = "2000-01-01 00:00:00+00"

_SQL_TYPE = {"id": "VARCHAR", "time": "TIMESTAMPTZ", "int": "INTEGER", "float": "DOUBLE"}
_KIND_OF_SENSOR = {"loop": "loop", "camera": "camera", "radar": "radar"}
_ZONE_MARGIN_DEG = 0.05


@dataclass
class FileReport:
    """What happened to one file.

    Attributes
    ----------
    path, kind
        The file and the feed kind it was read as (``sensors`` for a registry).
    rows
        Data rows read.
    inserted, duplicates, quarantined
        Rows stored, rows whose key was already stored, rows rejected (see ``quarantine``).
    skipped
        The same bytes were ingested before: nothing was read.
    error
        The one-line reason the whole file was refused (nothing from it was stored).
    seconds
        Wall time.
    """

    path: Path
    kind: str | None = None
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    skipped: bool = False
    error: str | None = None
    seconds: float = 0.0


@dataclass
class IngestReport:
    """The reports of every file of one :func:`ingest` call."""

    files: list[FileReport] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows read over all files."""
        return sum(f.rows for f in self.files)

    @property
    def inserted(self) -> int:
        """Rows stored over all files."""
        return sum(f.inserted for f in self.files)

    @property
    def quarantined(self) -> int:
        """Rows quarantined over all files."""
        return sum(f.quarantined for f in self.files)

    @property
    def failed(self) -> list[FileReport]:
        """Files refused as a whole."""
        return [f for f in self.files if f.error is not None]


class Store:
    """The DuckDB store (open it with ``Store(path)`` or ``Store.of(workspace)``; close it when done).

    Parameters
    ----------
    path
        The DuckDB file (created with its tables on first use).
    read_only
        Open without write access (several readers may share the file).
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        import duckdb

        self.path = Path(path)
        if read_only and not self.path.is_file():
            raise InputError(
                path=self.path, field=None, expected="an existing store (run `roadtwin twin ingest`)"
            )
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise InputError(
                path=self.path, field=None, expected="a DuckDB store file", got=str(exc).splitlines()[0]
            ) from None
        self.con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            self._create()

    @classmethod
    def of(cls, workspace: Any, *, read_only: bool = False) -> Store:
        """Open the store of a :class:`~roadtwin.workspace.Workspace`."""
        return cls(workspace.store_path, read_only=read_only)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    def _create(self) -> None:
        c = self.con
        c.execute("""CREATE TABLE IF NOT EXISTS sensors (
            sensor_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, edge_id VARCHAR, lane_id VARCHAR,
            lanes INTEGER, pos_m DOUBLE, length_m DOUBLE, lon_deg DOUBLE, lat_deg DOUBLE)""")
        c.execute("CREATE SEQUENCE IF NOT EXISTS file_ids START 1")
        c.execute("""CREATE TABLE IF NOT EXISTS ingested_files (
            file_id INTEGER PRIMARY KEY, sha256 VARCHAR UNIQUE NOT NULL, path VARCHAR NOT NULL,
            kind VARCHAR NOT NULL, rows BIGINT, inserted BIGINT, duplicates BIGINT, quarantined BIGINT,
            ingested_at TIMESTAMPTZ NOT NULL)""")
        c.execute("""CREATE TABLE IF NOT EXISTS quarantine (
            file_id INTEGER NOT NULL, path VARCHAR NOT NULL, kind VARCHAR, row_nr BIGINT,
            reason VARCHAR NOT NULL, raw VARCHAR, ingested_at TIMESTAMPTZ NOT NULL)""")
        for kind, fields in FIELDS.items():
            cols = ", ".join(
                f"{f.name} {_SQL_TYPE[f.type]}{'' if f.nullable else ' NOT NULL'}" for f in fields
            )
            c.execute(f"CREATE TABLE IF NOT EXISTS obs_{kind} ({cols}, file_id INTEGER NOT NULL)")

    # --- reading ---------------------------------------------------------------------------------------

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return self.con.sql(sql, params=list(params)).to_arrow_table().to_pandas()

    def observations(
        self, kind: str, *, sensor_id: str | None = None, start: Any = None, end: Any = None
    ) -> pd.DataFrame:
        """Return the observations of ``kind`` in time order (optionally one sensor, ``[start, end)``)."""
        if kind not in FIELDS:
            raise InputError(path=None, field="kind", expected=f"one of {', '.join(FIELDS)}", got=kind)
        key, ts = KEYS[kind]
        where, params = ["TRUE"], []
        if sensor_id is not None:
            where.append(f"{key} = ?")
            params.append(sensor_id)
        for op, value in ((">=", start), ("<", end)):
            if value is not None:
                where.append(f"{ts} {op} CAST(? AS TIMESTAMPTZ)")
                params.append(str(pd.Timestamp(value).isoformat()))
        return self._frame(
            f"SELECT * EXCLUDE (file_id) FROM obs_{kind} WHERE {' AND '.join(where)} ORDER BY {ts}, {key}",
            params,
        )

    def quarantine(self) -> pd.DataFrame:
        """Return the quarantined rows with their reasons, in ingestion order."""
        return self._frame("SELECT * FROM quarantine ORDER BY file_id, row_nr")

    def files(self) -> pd.DataFrame:
        """Return the ingested files."""
        return self._frame("SELECT * FROM ingested_files ORDER BY file_id")

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        tables = ["sensors", *(f"obs_{k}" for k in FIELDS), "quarantine", "ingested_files"]
        return {t: int(self.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in tables}  # type: ignore[index]

    # --- writing ---------------------------------------------------------------------------------------

    def register_sensors(self, sensors: pd.DataFrame | pa.Table) -> int:
        """Insert or replace sensors of the registry (columns of :data:`SENSORS_SCHEMA`); return the count."""
        table = (
            sensors if isinstance(sensors, pa.Table) else pa.Table.from_pandas(sensors, preserve_index=False)
        )
        table = table.select(SENSORS_SCHEMA.names).cast(SENSORS_SCHEMA)
        self.con.register("_reg", table)
        try:
            self.con.execute("INSERT OR REPLACE INTO sensors SELECT * FROM _reg")
        finally:
            self.con.unregister("_reg")
        return table.num_rows


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_ALLOWED = {
    "id": (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_null),
    "time": (pa.types.is_timestamp, pa.types.is_date, pa.types.is_string, pa.types.is_large_string,
             pa.types.is_null),
    "int": (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_string,
            pa.types.is_large_string, pa.types.is_null),
    "float": (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_string,
              pa.types.is_large_string, pa.types.is_null),
}  # fmt: skip
_TYPE_WORD = {
    "id": "a text",
    "time": "a timestamp (or ISO 8601 text)",
    "int": "an integer",
    "float": "a number",
}


def _check_columns(path: Path, schema: pa.Schema, *, kind: str | None) -> str:
    """Return the file's kind after checking that its columns (and their types) make a feed."""
    names = list(schema.names)
    found = kind or detect_kind(names)
    if found is None:
        near, missing = closest_kind(names)
        raise InputError(
            path=path, field=missing[0],
            expected=f"a column {missing[0]!r} ({near} feed: {', '.join(f.name for f in FIELDS[near])}; "
                     "see twin/FEEDS.md)",
        )  # fmt: skip
    spec = FIELDS.get(found)
    if spec is None:
        return found
    for f in spec:
        if f.name not in names:
            raise InputError(path=path, field=f.name, expected=f"a column {f.name!r} of a {found} feed")
        typ = schema.field(f.name).type
        if not any(test(typ) for test in _ALLOWED[f.type]):
            raise InputError(path=path, field=f.name, expected=f"{_TYPE_WORD[f.type]} column", got=str(typ))
    return found


def _parquet_source(path: Path, *, kind: str | None) -> tuple[str, str, pa.Schema]:
    import pyarrow.parquet as pq

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if head != b"PAR1" or tail != b"PAR1":
        raise InputError(path=path, field=None, expected="a whole Parquet file (truncated: no footer)")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise InputError(
            path=path, field=None, expected="a readable Parquet file", got=str(exc).splitlines()[0]
        ) from None
    found = _check_columns(path, schema, kind=kind)
    return (
        found,
        f"(SELECT file_row_number + 1 AS _row, * FROM read_parquet({_sql_str(str(path))}, file_row_number = true))",
        schema,
    )


def _csv_source(
    path: Path, con: Any, *, kind: str | None
) -> tuple[str, str, pa.Schema, list[tuple[int | None, str]]]:
    import pyarrow.csv as pacsv

    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise InputError(path=path, field=None, expected="a UTF-8 CSV file with a header line") from None
    if not header:
        raise InputError(path=path, field=None, expected="a CSV file with a header line", got="an empty file")
    schema = pa.schema([pa.field(name, pa.string()) for name in header])
    found = _check_columns(path, schema, kind=kind)
    bad: list[tuple[int | None, str]] = []

    def invalid(row: Any) -> str:
        bad.append((row.number, f"malformed CSV row: {row.expected_columns} fields expected, "
                                f"{row.actual_columns} found\t{row.text}"))  # fmt: skip
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in header},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InputError(
            path=path, field=None, expected="a readable UTF-8 CSV file", got=str(exc).splitlines()[0]
        ) from None
    table = table.append_column("_row", pa.array(range(1, table.num_rows + 1), type=pa.int64()))
    con.register("_csv_src", table)
    return found, "_csv_src", schema, bad


def _typed(f: Field, col: str, src_type: pa.DataType) -> str:
    if f.type == "id":
        return f"NULLIF(CAST({col} AS VARCHAR), '')"
    if f.type == "int" and (pa.types.is_floating(src_type) or pa.types.is_decimal(src_type)):
        # 3.0 is a count, 3.5 is not: keep whole numbers only
        return f"CASE WHEN {col} = trunc({col}) THEN TRY_CAST({col} AS INTEGER) END"
    return f"TRY_CAST({col} AS {_SQL_TYPE[f.type]})"


def _isnan(x: str) -> str:
    # DuckDB 2.0 folds isnan(col) to false when the Parquet statistics of col show no NaN (they never
    # do: writers leave NaN out of min/max), so test "neither finite nor infinite" instead.
    return f"(NOT isfinite({x}) AND NOT isinf({x}))"


def _reason_sql(
    kind: str, fields: tuple[Field, ...], *, schema: pa.Schema, now_s: float, skew_s: float,
    bbox: tuple[float, ...] | None,
) -> str:  # fmt: skip
    checks: list[str] = []
    for f in fields:
        c, t = _q(f.name), f"t_{f.name}"
        src = schema.field(f.name).type
        # Only text can fail to parse; a numeric or timestamp column casts whole.
        if f.type != "id" and (pa.types.is_string(src) or pa.types.is_large_string(src)):
            checks.append(f"WHEN {c} IS NOT NULL AND {t} IS NULL AND trim({c}) <> '' "
                          f"THEN '{f.name}: unparseable ({_TYPE_WORD[f.type]} expected)'")  # fmt: skip
        elif pa.types.is_floating(src) and f.type == "int":
            checks.append(f"WHEN {_isnan(c)} THEN '{f.name}: NaN'")
            checks.append(f"WHEN {t} IS NULL AND {c} IS NOT NULL THEN '{f.name}: not a whole number'")
        if not f.nullable:
            checks.append(f"WHEN {t} IS NULL THEN '{f.name}: missing'")
        if f.type == "float":
            checks.append(f"WHEN {_isnan(t)} THEN '{f.name}: NaN'")
        if f.low is not None:
            checks.append(f"WHEN {t} < {f.low} THEN '{f.name}: below {f.low:g}'")
        if f.high is not None:
            checks.append(f"WHEN {t} > {f.high} THEN '{f.name}: above {f.high:g}'")
        if f.type == "time":
            checks.append(f"WHEN {t} > to_timestamp({now_s + skew_s}) THEN '{f.name}: in the future'")
            checks.append(f"WHEN {t} < TIMESTAMPTZ '{MIN_TIME}' THEN '{f.name}: before 2000-01-01'")
    if kind == "probe":
        checks.append("WHEN t_received_at < t_measured_at THEN 'received_at: before measured_at'")
        if bbox is not None:
            lo_lon, lo_lat, hi_lon, hi_lat = bbox
            checks.append(f"WHEN t_lon_deg NOT BETWEEN {lo_lon} AND {hi_lon} OR t_lat_deg NOT BETWEEN {lo_lat} "
                          f"AND {hi_lat} THEN 'lon_deg/lat_deg: outside the zone'")  # fmt: skip
    else:
        checks.append("WHEN _known IS NULL THEN 'sensor_id: unknown sensor (not in the registry)'")
    return "CASE " + " ".join(checks) + " END"


def _ingest_sensors(
    store: Store, path: Path, source: str, report: FileReport, file_id: int, now: str
) -> None:
    con = store.con
    cols = ", ".join(_q(n) for n in SENSORS_SCHEMA.names)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _sens AS SELECT _row, {cols},
        CASE WHEN sensor_id IS NULL OR trim(sensor_id) = '' THEN 'sensor_id: missing'
             WHEN kind NOT IN ('loop', 'camera', 'radar') THEN 'kind: not loop, camera or radar'
             WHEN TRY_CAST(lon_deg AS DOUBLE) IS NULL OR TRY_CAST(lat_deg AS DOUBLE) IS NULL
               OR NOT TRY_CAST(lon_deg AS DOUBLE) BETWEEN -180 AND 180
               OR NOT TRY_CAST(lat_deg AS DOUBLE) BETWEEN -90 AND 90 THEN 'lon_deg/lat_deg: not a position'
        END AS reason FROM {source}""")
    report.rows = con.execute("SELECT count(*) FROM _sens").fetchall()[0][0]
    casts = ", ".join(
        f"TRY_CAST({_q(f.name)} AS {'VARCHAR' if pa.types.is_string(f.type) else 'INTEGER' if pa.types.is_integer(f.type) else 'DOUBLE'})"
        for f in SENSORS_SCHEMA
    )
    report.inserted = con.execute(
        f"INSERT OR REPLACE INTO sensors SELECT {casts} FROM _sens WHERE reason IS NULL "
        "QUALIFY row_number() OVER (PARTITION BY sensor_id ORDER BY _row DESC) = 1"
    ).fetchall()[0][0]
    report.quarantined = con.execute(
        f"INSERT INTO quarantine SELECT {file_id}, {_sql_str(str(path))}, 'sensors', _row, reason, "
        f"to_json(struct_pack({cols})), {now} FROM _sens WHERE reason IS NOT NULL"
    ).fetchall()[0][0]
    con.execute("DROP TABLE _sens")


def _zone_bbox(store: Store) -> tuple[float, ...] | None:
    row = store.con.execute(
        "SELECT min(lon_deg), min(lat_deg), max(lon_deg), max(lat_deg) FROM sensors"
    ).fetchall()[0]
    if row[0] is None:
        return None
    m = _ZONE_MARGIN_DEG
    return (row[0] - m, row[1] - m, row[2] + m, row[3] + m)


def _ingest_feed(
    store: Store, path: Path, kind: str, source: str, schema: pa.Schema, report: FileReport,
    file_id: int, now: str, now_s: float, skew_s: float,
) -> None:  # fmt: skip
    con = store.con
    fields = FIELDS[kind]
    key, ts = KEYS[kind]
    raw = ", ".join(_q(f.name) for f in fields)
    typed = ", ".join(f"{_typed(f, _q(f.name), schema.field(f.name).type)} AS t_{f.name}" for f in fields)
    join = ""
    if kind != "probe":
        join = f"LEFT JOIN (SELECT sensor_id AS _known FROM sensors WHERE kind = '{kind}') k ON k._known = s.t_sensor_id"
    reason = _reason_sql(kind, fields, schema=schema, now_s=now_s, skew_s=skew_s, bbox=_zone_bbox(store))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _stage AS
        SELECT _row, {", ".join(f"t_{f.name}" for f in fields)}, reason,
               CASE WHEN reason IS NOT NULL THEN to_json(struct_pack({raw})) END AS raw
        FROM (SELECT *, {reason} AS reason
              FROM (SELECT _row, {raw}, {typed} FROM {source}) s {join}) v""")
    report.rows = con.execute("SELECT count(*) FROM _stage").fetchall()[0][0]
    # Later copies of a key within the file are quarantined; the first one stands. A grouping on the
    # key's hash finds candidates cheaply; the exact pass runs only when there are any.
    candidates = con.execute(
        f"SELECT count(*) FROM (SELECT hash(t_{key}, t_{ts}) AS h FROM _stage WHERE reason IS NULL "
        "GROUP BY h HAVING count(*) > 1)"
    ).fetchall()[0][0]
    if candidates:
        con.execute(f"""UPDATE _stage SET reason = 'duplicate of an earlier row of this file',
                raw = to_json(struct_pack({", ".join(f"{f.name} := t_{f.name}" for f in fields)}))
            FROM (SELECT _row AS dup_row FROM (
                SELECT _row, row_number() OVER (PARTITION BY t_{key}, t_{ts} ORDER BY _row) AS rn
                FROM _stage WHERE reason IS NULL) WHERE rn > 1) d
            WHERE _stage._row = d.dup_row""")
    cols = ", ".join(f"t_{f.name}" for f in fields)
    lo, hi = con.execute(
        f"SELECT epoch_us(min(t_{ts})), epoch_us(max(t_{ts})) FROM _stage WHERE reason IS NULL"
    ).fetchall()[0]
    window = f"o.{ts} BETWEEN make_timestamptz({lo or 0}) AND make_timestamptz({hi or 0})"
    overlap = con.execute(f"SELECT 1 FROM obs_{kind} o WHERE {window} LIMIT 1").fetchall()
    # Fresh time ranges (the usual case) need no key check against the store.
    anti = (
        f"AND NOT EXISTS (SELECT 1 FROM obs_{kind} o WHERE o.{key} = s.t_{key} AND o.{ts} = s.t_{ts} AND {window})"
        if overlap
        else ""
    )
    report.inserted = con.execute(
        f"INSERT INTO obs_{kind} SELECT {cols}, {file_id} FROM _stage s WHERE reason IS NULL {anti}"
    ).fetchall()[0][0]
    report.quarantined = con.execute(
        f"INSERT INTO quarantine SELECT {file_id}, {_sql_str(str(path))}, '{kind}', _row, reason, raw, {now} "
        "FROM _stage WHERE reason IS NOT NULL"
    ).fetchall()[0][0]
    report.duplicates = report.rows - report.inserted - report.quarantined
    con.execute("DROP TABLE _stage")


def _ingest_one(store: Store, path: Path, *, kind: str | None, now_s: float, skew_s: float) -> FileReport:
    import duckdb

    t0 = time.perf_counter()
    report = FileReport(path=path)
    if not path.is_file():
        raise InputError(path=path, field=None, expected="an existing Parquet or CSV file")
    digest = sha256_file(path)
    con = store.con
    if con.execute("SELECT 1 FROM ingested_files WHERE sha256 = ?", [digest]).fetchall():
        report.skipped = True
        report.seconds = time.perf_counter() - t0
        return report
    with open(path, "rb") as fh:
        magic = fh.read(4)
    suffix = path.name.lower()
    bad_csv: list[tuple[int | None, str]] = []
    if magic == b"PAR1" or suffix.endswith((".parquet", ".pq")):
        found, source, schema = _parquet_source(path, kind=kind)
        fmt = "parquet"
    elif suffix.endswith((".csv", ".txt")):
        found, source, schema, bad_csv = _csv_source(path, con, kind=kind)
        fmt = "csv"
    else:
        raise InputError(path=path, field=None, expected="a Parquet (.parquet) or CSV (.csv) feed file")
    report.kind = found
    now = f"to_timestamp({now_s})"
    con.execute("BEGIN TRANSACTION")
    try:
        file_id = con.execute("SELECT nextval('file_ids')").fetchall()[0][0]
        if found == "sensors":
            _ingest_sensors(store, path, source, report, file_id, now)
        else:
            _ingest_feed(store, path, found, source, schema, report, file_id, now, now_s, skew_s)
        for number, text in bad_csv:
            reason, _, line = text.partition("\t")
            con.execute(
                f"INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, to_json(?), {now})",
                [file_id, str(path), found, number, reason, line],
            )
        report.quarantined += len(bad_csv)
        report.rows += len(bad_csv)
        con.execute(
            f"INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now})",
            [
                file_id,
                digest,
                str(path),
                found,
                report.rows,
                report.inserted,
                report.duplicates,
                report.quarantined,
            ],
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise InputError(
            path=path, field=None, expected=f"a readable {fmt} feed", got=str(exc).splitlines()[0]
        ) from None
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        if fmt == "csv":
            con.unregister("_csv_src")
    report.seconds = time.perf_counter() - t0
    return report


def _registry_first(paths: Iterable[Path]) -> list[Path]:
    """Expand folders (their ``*.parquet`` files) and put sensor registries first."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(p.glob("*.parquet")))
        else:
            out.append(p)
    return sorted(out, key=lambda p: 0 if p.name.startswith("sensors.") else 1)


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    *,
    store: Store,
    kind: str | None = None,
    max_skew_s: float = 300.0,
    now: float | None = None,
    keep_going: bool = True,
    on_file: Any = None,
) -> IngestReport:
    """Validate and ingest feed files (Parquet or CSV) into ``store``, one transaction per file.

    Parameters
    ----------
    paths
        Feed files, or folders (their ``*.parquet`` files). Sensor registries (``sensors.*``) go first.
    store
        An open, writable :class:`Store`.
    kind
        Read every file as this kind instead of recognising it by its columns.
    max_skew_s
        Timestamps later than ``now + max_skew_s`` are quarantined as in the future.
    now
        The present as Unix seconds (default: the clock); for tests and replays.
    keep_going
        Go on with the next file when one is refused (its :class:`FileReport` carries the error);
        otherwise raise the :class:`~roadtwin.errors.InputError`.
    on_file
        Called as ``on_file(report)`` after each file (progress display).

    Returns
    -------
    IngestReport
        One :class:`FileReport` per file.
    """
    if kind is not None and kind not in (*FIELDS, "sensors"):
        raise InputError(
            path=None, field="kind", expected=f"one of {', '.join([*FIELDS, 'sensors'])}", got=kind
        )
    now_s = time.time() if now is None else float(now)
    result = IngestReport()
    for path in _registry_first(Path(p) for p in paths):
        try:
            report = _ingest_one(store, path, kind=kind, now_s=now_s, skew_s=max_skew_s)
        except InputError as exc:
            if not keep_going:
                raise
            report = FileReport(path=path, error=str(exc))
        result.files.append(report)
        if on_file is not None:
            on_file(report)
    return result
