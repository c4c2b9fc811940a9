"""The store: its tables, reopening, and a kill -9 in the middle of a file leaving it as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roadtwin.twin.schemas import FIELDS, SCHEMAS, SENSORS_SCHEMA
from roadtwin.twin.store import Store, ingest
from roadtwin.workspace import Workspace

N_SENSORS = 1000


def _registry(folder: Path) -> Path:
    ids = [f"loop:{i}_{i + 1}_1:stop" for i in range(N_SENSORS)]
    table = pa.table(
        {"sensor_id": ids, "kind": ["loop"] * N_SENSORS, "edge_id": [s[5:-7] for s in ids],
         "lane_id": [s[5:-5] for s in ids], "lanes": [1] * N_SENSORS, "pos_m": [1.0] * N_SENSORS,
         "length_m": [0.0] * N_SENSORS, "lon_deg": [116.5] * N_SENSORS, "lat_deg": [39.8] * N_SENSORS},
        schema=SENSORS_SCHEMA,
    )  # fmt: skip
    pq.write_table(table, folder / "sensors.parquet")
    return folder / "sensors.parquet"


def _big_feed(path: Path, *, rows: int, start_min: int = 0) -> Path:
    k = np.arange(rows)
    ids = np.array([f"loop:{i}_{i + 1}_1:stop" for i in range(N_SENSORS)], dtype=object)
    at = np.datetime64("2026-01-05T00:00", "ms").astype(np.int64) + (start_min + k // N_SENSORS) * 60_000
    table = pa.table(
        [pa.array(ids[k % N_SENSORS], pa.string()), pa.array(at).cast(SCHEMAS["loop"].field("measured_at").type),
         pa.array(np.full(rows, 60, np.int32)), pa.array((k % 9).astype(np.int32)),
         pa.array(np.full(rows, 3.0)), pa.array(np.full(rows, 30.0))],
        schema=SCHEMAS["loop"],
    )  # fmt: skip
    pq.write_table(table, path)
    return path


def test_store_lives_in_the_workspace_with_its_tables(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    with Store.of(ws) as store:
        ingest([_registry(tmp_path)], store=store)
        counts = store.counts()
    assert ws.store_path.is_file()
    assert counts["sensors"] == N_SENSORS
    assert {f"obs_{k}" for k in FIELDS} | {"quarantine", "ingested_files"} <= set(counts)
    # reopening (read-only, as the dashboard does) sees the same
    with Store.of(ws, read_only=True) as store:
        assert store.counts() == counts
        assert store.files()["kind"].tolist() == ["sensors"]


def test_kill_mid_ingest_leaves_the_store_as_before(tmp_path: Path) -> None:
    db = tmp_path / "roadtwin.duckdb"
    with Store(db) as store:
        ingest([_registry(tmp_path), _big_feed(tmp_path / "first.parquet", rows=10_000)], store=store)
        before = store.counts()
    big = _big_feed(tmp_path / "big.parquet", rows=3_000_000, start_min=100)
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from roadtwin.twin.store import Store, ingest; s = Store(sys.argv[1]); print('go', flush=True);"
         "ingest([sys.argv[2]], store=s); print('done', flush=True)", str(db), str(big)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "go"
    time.sleep(0.4)
    assert child.poll() is None, "ingest finished before the kill: make the file bigger"
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Store(db) as store:
        assert store.counts() == before
        # and the file goes in whole afterwards
        report = ingest([big], store=store).files[0]
        assert report.inserted == 3_000_000
        assert store.counts()["obs_loop"] == before["obs_loop"] + 3_000_000
