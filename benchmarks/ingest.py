"""Ingestion speed: validated, idempotent ingestion of a loop feed into the DuckDB store, end to end.

Generates ``--rows`` loop observations (per-minute rows of ``--sensors`` registered loops) as one
Parquet file, with ``--bad`` of them broken (unknown sensor, NaN or negative count, occupancy over
100 %, a timestamp in the future), then times :func:`roadtwin.twin.store.ingest` on it: hashing,
reading, validating every row, quarantining the bad ones, inserting the rest with the key check,
committing. A second ingest of the same file (skipped by its hash) and a re-ingest of a copy (every
row a duplicate) are timed too. Goal: at least 1 M rows/s.

    python benchmarks/ingest.py [--rows 5000000] [--sensors 2000] [--bad 0.02] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def make_feed(folder: Path, *, rows: int, sensors: int, bad: float, seed: int = 0) -> tuple[Path, Path]:
    """Write ``sensors.parquet`` and ``loop.parquet`` (``rows`` rows, a share ``bad`` broken) into ``folder``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from roadtwin.twin.schemas import SCHEMAS, SENSORS_SCHEMA

    rng = np.random.default_rng(seed)
    ids = np.array([f"loop:{i // 4}_{i // 4 + 1}_{i % 4}:stop" for i in range(sensors)], dtype=object)
    registry = pa.table(
        {
            "sensor_id": ids, "kind": ["loop"] * sensors, "edge_id": [s.split(":")[1][:-2] for s in ids],
            "lane_id": [s.split(":")[1] for s in ids], "lanes": np.ones(sensors, np.int32),
            "pos_m": np.full(sensors, 99.0), "length_m": np.zeros(sensors),
            "lon_deg": 116.5 + rng.random(sensors) * 0.05, "lat_deg": 39.78 + rng.random(sensors) * 0.04,
        },
        schema=SENSORS_SCHEMA,
    )  # fmt: skip
    k = np.arange(rows)
    start = np.datetime64("2026-01-05T00:00:00", "ms").astype(np.int64)
    at = start + (k // sensors) * 60_000
    count = rng.integers(0, 30, rows).astype(np.float64)
    occ = rng.uniform(0, 60, rows)
    speed = np.where(count > 0, rng.uniform(5, 70, rows), np.nan)
    sid = ids[k % sensors].copy()
    broken = rng.random(rows) < bad
    which = rng.integers(0, 5, rows)
    sid[broken & (which == 0)] = "loop:nowhere:stop"
    count[broken & (which == 1)] = np.nan
    count[broken & (which == 2)] = -3
    occ[broken & (which == 3)] = 140.0
    at[broken & (which == 4)] = np.datetime64("2099-01-01", "ms").astype(np.int64)
    table = pa.table(
        {
            "sensor_id": pa.array(sid, pa.string()),
            "measured_at": pa.array(at, pa.int64()).cast(SCHEMAS["loop"].field("measured_at").type),
            "interval_s": pa.array(np.full(rows, 60, np.int32)),
            # a float column: NaN counts are what a broken upstream system writes
            "count_veh": pa.array(count),
            "occupancy_pct": pa.array(occ),
            "speed_kmh": pa.array(speed, mask=np.isnan(speed)),
        }
    )
    reg, feed = folder / "sensors.parquet", folder / "loop.parquet"
    pq.write_table(registry, reg)
    pq.write_table(table, feed, row_group_size=1 << 20)
    return reg, feed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--sensors", type=int, default=2000)
    parser.add_argument("--bad", type=float, default=0.02, help="share of broken rows")
    parser.add_argument("--repeat", type=int, default=3, help="fresh stores timed (median reported)")
    args = parser.parse_args(argv)

    import pyarrow.parquet as pq

    from roadtwin.twin.store import Store, ingest

    work = Path(tempfile.mkdtemp(prefix="roadtwin-bench-ingest-"))
    try:
        reg, feed = make_feed(work, rows=args.rows, sensors=args.sensors, bad=args.bad)
        size_mb = feed.stat().st_size / 1e6
        times, last = [], None
        for i in range(args.repeat):
            db = work / f"store{i}.duckdb"
            with Store(db) as store:
                ingest([reg], store=store)
                t0 = time.perf_counter()
                report = ingest([feed], store=store, keep_going=False)
                times.append(time.perf_counter() - t0)
                last = report.files[0]
                t0 = time.perf_counter()
                again = ingest([feed], store=store).files[0]
                t_skip = time.perf_counter() - t0
                copy = work / "loop-copy.parquet"
                pq.write_table(pq.read_table(feed), copy, compression="zstd")  # same rows, other bytes
                t0 = time.perf_counter()
                dup = ingest([copy], store=store).files[0]
                t_dup = time.perf_counter() - t0
            db.unlink()
        assert last is not None
        best = statistics.median(times)
        print(
            f"loop feed: {args.rows:,} rows ({size_mb:.0f} MB Parquet), {args.sensors} sensors, {args.bad:.0%} broken"
        )
        print(
            f"{'ingest (median of ' + str(args.repeat) + ')':<32}{best:8.2f} s  {args.rows / best / 1e6:6.2f} M rows/s"
        )
        print(f"{'  inserted':<32}{last.inserted:>12,}")
        print(f"{'  quarantined':<32}{last.quarantined:>12,}")
        print(f"{'  duplicates':<32}{last.duplicates:>12,}")
        print(f"{'re-ingest same file (skipped)':<32}{t_skip:8.3f} s  inserted {again.inserted}")
        print(
            f"{'same rows, other bytes':<32}{t_dup:8.3f} s  inserted {dup.inserted}, duplicates {dup.duplicates:,}"
        )
        print(f"goal >= 1 M rows/s: {'met' if args.rows / best >= 1e6 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
