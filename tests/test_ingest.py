"""Ingestion: every row validated, bad rows quarantined with a reason, idempotent, file errors in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roadtwin.errors import InputError
from roadtwin.twin.schemas import SCHEMAS, SENSORS_SCHEMA
from roadtwin.twin.store import Store, ingest

SENSORS = ["loop:1_2_1:stop", "loop:1_2_1:up", "loop:2_3_1:stop"]
T0 = pd.Timestamp("2026-11-20 00:00", tz="UTC")
NOW = pd.Timestamp("2026-11-21 00:00", tz="UTC").timestamp()

CLI = ("-m", "roadtwin.cli")  # the installed CLI, as a user runs it


def registry(folder: Path) -> Path:
    n = len(SENSORS)
    table = pa.table(
        {"sensor_id": SENSORS, "kind": ["loop"] * n, "edge_id": [s.split(":")[1][:-2] for s in SENSORS],
         "lane_id": [s.split(":")[1] for s in SENSORS], "lanes": [1] * n, "pos_m": [10.0] * n,
         "length_m": [0.0] * n, "lon_deg": [116.50, 116.51, 116.52], "lat_deg": [39.79, 39.79, 39.80]},
        schema=SENSORS_SCHEMA,
    )  # fmt: skip
    path = folder / "sensors.parquet"
    pq.write_table(table, path)
    return path


def loops(minutes: range, *, sensors: list[str] = SENSORS) -> pd.DataFrame:
    rows = [
        {"sensor_id": s, "measured_at": T0 + pd.Timedelta(minutes=m), "interval_s": 60, "count_veh": m % 7,
         "occupancy_pct": 5.0, "speed_kmh": 40.0 if m % 7 else None}
        for m in minutes for s in sensors
    ]  # fmt: skip
    return pd.DataFrame(rows)


def write(df: pd.DataFrame, path: Path) -> Path:
    pq.write_table(pa.Table.from_pandas(df, schema=SCHEMAS["loop"], preserve_index=False), path)
    return path


@pytest.fixture()
def store(tmp_path: Path):
    with Store(tmp_path / "roadtwin.duckdb") as s:
        ingest([registry(tmp_path)], store=s)
        yield s


def test_good_file_lands_and_reingest_adds_nothing(store: Store, tmp_path: Path) -> None:
    feed = write(loops(range(30)), tmp_path / "loop.parquet")
    first = ingest([feed], store=store, now=NOW).files[0]
    assert (first.kind, first.rows, first.inserted, first.quarantined) == ("loop", 90, 90, 0)
    again = ingest([feed], store=store, now=NOW).files[0]
    assert again.skipped and again.inserted == 0
    # the same rows as CSV (other bytes): every row a duplicate, nothing added
    csv = tmp_path / "loop.csv"
    loops(range(30)).assign(measured_at=lambda d: d["measured_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        csv, index=False
    )
    dup = ingest([csv], store=store, now=NOW).files[0]
    assert (dup.rows, dup.inserted, dup.duplicates, dup.quarantined) == (90, 0, 90, 0)
    assert store.counts()["obs_loop"] == 90
    assert store.counts()["quarantine"] == 0


def test_late_and_out_of_order_rows_land_in_place(store: Store, tmp_path: Path) -> None:
    early, late = loops(range(0, 10)), loops(range(10, 20))
    ingest([write(late.sample(frac=1, random_state=1), tmp_path / "late.parquet")], store=store, now=NOW)
    ingest([write(early.iloc[::-1], tmp_path / "early.parquet")], store=store, now=NOW)
    got = store.observations("loop", sensor_id=SENSORS[0])
    assert len(got) == 20
    assert got["measured_at"].is_monotonic_increasing
    assert got["count_veh"].tolist() == [m % 7 for m in range(20)]
    window = store.observations("loop", start=T0 + pd.Timedelta(minutes=5), end=T0 + pd.Timedelta(minutes=7))
    assert len(window) == 2 * len(SENSORS)


def test_bad_rows_are_quarantined_with_reasons(store: Store, tmp_path: Path) -> None:
    df = loops(range(10)).astype({"count_veh": "float64"})
    df.loc[0, "sensor_id"] = "loop:nowhere:stop"
    df.loc[1, "count_veh"] = np.nan
    df.loc[2, "count_veh"] = -1
    df.loc[3, "measured_at"] = pd.Timestamp("2099-01-01", tz="UTC")
    df.loc[4, "occupancy_pct"] = 130.0
    df.loc[5, "speed_kmh"] = float("nan")
    df.loc[6, "count_veh"] = 2.5
    bad = pa.Table.from_pandas(df, preserve_index=False)
    # pandas turns NaN into null on the way to Arrow: put the real NaNs back
    count, speed = df["count_veh"].to_numpy(), df["speed_kmh"].to_numpy()
    bad = bad.set_column(3, "count_veh", pa.array(count))
    bad = bad.set_column(5, "speed_kmh", pa.array(speed, mask=np.isnan(speed) & (df.index != 5)))
    pq.write_table(bad, tmp_path / "bad.parquet")
    report = ingest([tmp_path / "bad.parquet"], store=store, now=NOW).files[0]
    assert (report.rows, report.inserted, report.quarantined) == (30, 23, 7)
    q = store.quarantine()
    reasons = dict(zip(q["row_nr"], q["reason"], strict=True))
    assert "unknown sensor" in reasons[1]
    assert reasons[2] == "count_veh: NaN"
    assert reasons[3] == "count_veh: below 0"
    assert reasons[4] == "measured_at: in the future"
    assert reasons[5] == "occupancy_pct: above 100"
    assert reasons[6] == "speed_kmh: NaN"
    assert reasons[7] == "count_veh: not a whole number"
    assert "loop:nowhere:stop" in q.loc[q["row_nr"] == 1, "raw"].iloc[0]
    assert (q["path"] == str(tmp_path / "bad.parquet")).all()


def test_bad_csv_rows_are_quarantined(store: Store, tmp_path: Path) -> None:
    csv = tmp_path / "loop.csv"
    csv.write_text(
        "sensor_id,measured_at,interval_s,count_veh,occupancy_pct,speed_kmh\n"
        f"{SENSORS[0]},2026-11-20T08:00:00Z,60,3,4.5,30\n"
        f"{SENSORS[0]},yesterday,60,3,4.5,30\n"
        f"{SENSORS[1]},2026-11-20T08:00:00Z,60,NaN,4.5,30\n"
        f"{SENSORS[1]},2026-11-20T08:01:00Z,60,three,4.5,30\n"
        f"{SENSORS[2]},2026-11-20T08:00:00Z,60,3,4.5\n"
        f"{SENSORS[2]},2026-11-20T08:02:00Z,60,0,0,\n"
        f"{SENSORS[0]},2026-11-20T08:00:00Z,60,3,4.5,30\n",
        encoding="utf-8",
    )
    report = ingest([csv], store=store, now=NOW).files[0]
    assert (report.rows, report.inserted, report.quarantined) == (7, 2, 5)
    reasons = sorted(store.quarantine()["reason"])
    assert any(r.startswith("measured_at: unparseable") for r in reasons)
    assert any(r.startswith("count_veh: unparseable") for r in reasons)
    assert any(r.startswith("malformed CSV row") for r in reasons)
    assert "duplicate of an earlier row of this file" in reasons


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda p: write(loops(range(3)), p).write_bytes(p.read_bytes()[:-300]), None),  # truncated
        (lambda p: pq.write_table(pa.table({"sensor_id": ["x"], "when": [1]}), p), "measured_at"),
        (
            lambda p: pq.write_table(
                pa.Table.from_pandas(
                    loops(range(2)).assign(count_veh=lambda d: [[1]] * len(d)), preserve_index=False
                ),
                p,
            ),
            "count_veh",
        ),
        (lambda p: p.write_text("hello"), None),
    ],
    ids=["truncated", "missing-column", "wrong-type", "not-parquet"],
)
def test_unreadable_files_are_refused_in_one_line(store: Store, tmp_path: Path, make, field) -> None:
    path = tmp_path / "feed.parquet"
    make(path)
    before = store.counts()
    with pytest.raises(InputError) as err:
        ingest([path], store=store, keep_going=False, now=NOW)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    if field:
        assert field in message
    assert store.counts() == before


def test_cli_ingest_goes_on_and_exits_2(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    reg = registry(tmp_path)
    good = write(loops(range(3)), tmp_path / "loop.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[:100])
    missing = tmp_path / "nothing.parquet"
    out = subprocess.run(
        [sys.executable, *CLI, "twin", "ingest", str(broken), str(reg), str(good), str(missing),
         "--workspace", str(ws)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("roadtwin: error:")]
    assert len(errors) == 2 and "broken.parquet" in errors[0] and "nothing.parquet" in errors[1]
    assert "Traceback" not in out.stderr
    with Store(ws / "roadtwin.duckdb", read_only=True) as s:
        assert s.counts()["obs_loop"] == 9
