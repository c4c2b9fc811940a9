"""Sensors: stable placement, and the feeds `roadtwin twin sense` writes from a real run of the zone."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from roadtwin.sim.run import run_scenario
from roadtwin.sim.scenario import Scenario
from roadtwin.twin.schemas import FEED_KINDS, SCHEMAS, SENSORS_SCHEMA, TRUTH_EDGES_SCHEMA
from roadtwin.twin.sensors import placement
from roadtwin.workspace import Workspace

SCENARIO = {
    "name": "t",
    "network": "yizhuang",
    "begin": "07:45",
    "end": "07:55",
    "seed": 1,
    "demand": {"veh_per_hour": 3000},
    "pedestrians": {"per_hour": 600},  # walkers must never become connected-vehicle probes
}
PENETRATION, NOISE_M = 0.3, 8.0

CLI = ("-m", "roadtwin.cli")  # the installed CLI, as a user runs it


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``roadtwin ARGS``."""
    return subprocess.run([sys.executable, *CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sensed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-minute run of the zone and its feeds, written through the CLI."""
    ws = Workspace.at(tmp_path_factory.mktemp("ws"))
    run = run_scenario(Scenario.model_validate(SCENARIO), workspace=ws, progress=False, report=False).run_dir
    out = cli("twin", "sense", str(run), "--penetration", str(PENETRATION), "--gps-noise-m", str(NOISE_M),
              "--day", "2026-11-20", "--seed", "3", "--no-progress")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return run


def test_placement_ids_survive_a_rebuild(zone_net: Path, tmp_path: Path) -> None:
    from roadtwin.maps import build_network

    again = build_network(out=tmp_path / "again.net.xml", zone="yizhuang")
    a, b = placement(zone_net), placement(again)
    assert a["sensor_id"].is_unique
    assert a["sensor_id"].tolist() == b["sensor_id"].tolist()
    assert set(a["kind"]) == {"loop", "camera", "radar"}
    assert (a["kind"] == "loop").sum() > 2 * (a["kind"] == "camera").sum() > 0
    assert a["lon_deg"].between(116.4, 116.7).all() and a["lat_deg"].between(39.7, 39.9).all()
    assert pa.Table.from_pandas(a, schema=SENSORS_SCHEMA, preserve_index=False).num_rows == len(a)


def test_sense_writes_every_feed_in_parquet_and_csv(sensed: Path) -> None:
    feeds = sensed / "feeds"
    for kind in FEED_KINDS:
        table = pq.read_table(feeds / f"{kind}.parquet")
        assert table.schema.equals(SCHEMAS[kind], check_metadata=False), kind
        assert table.num_rows > 0, kind
        csv = pacsv.read_csv(feeds / f"{kind}.csv")
        assert csv.column_names == SCHEMAS[kind].names
        assert csv.num_rows == table.num_rows
        first = pacsv.read_csv(feeds / f"{kind}.csv", convert_options=pacsv.ConvertOptions(
            column_types={"measured_at": pa.string()})).column("measured_at")[0].as_py()  # fmt: skip
        assert first.endswith("Z"), first
    # UTC: 07:45 in Beijing on 2026-11-20 is 23:45 UTC the day before
    loops = pq.read_table(feeds / "loop.parquet").to_pandas()
    assert str(loops["measured_at"].dt.tz) == "UTC"
    assert loops["measured_at"].min() == dt.datetime(2026, 11, 19, 23, 45, tzinfo=dt.UTC)
    assert pq.read_table(feeds / "sensors.parquet").num_rows > 1000
    assert not list(sensed.glob(".sense-work")), "work folder left behind"
    truth = pq.read_table(sensed / "truth" / "edges.parquet")
    assert truth.schema.equals(TRUTH_EDGES_SCHEMA, check_metadata=False)


def test_loop_counts_match_the_traffic(sensed: Path) -> None:
    loops = pq.read_table(sensed / "feeds" / "loop.parquet").to_pandas()
    assert loops["occupancy_pct"].between(0, 100).all()
    assert loops["speed_kmh"].dropna().between(0, 120).all()
    assert loops.loc[loops["count_veh"] == 0, "speed_kmh"].isna().all()
    # every vehicle crossing a stop line of an approach lane is counted once: compare with SUMO's own
    # per-edge "left" counts of the same edges (ground truth)
    stop = loops[loops["sensor_id"].str.endswith(":stop")].copy()
    stop["edge_id"] = stop["sensor_id"].str.split(":").str[1].str.rsplit("_", n=1).str[0]
    truth = pq.read_table(sensed / "truth" / "edges.parquet").to_pandas()
    left = truth[truth["edge_id"].isin(set(stop["edge_id"]))]["left_veh"].sum()
    assert abs(stop["count_veh"].sum() - left) <= 0.05 * left, (stop["count_veh"].sum(), left)
    cams = pq.read_table(sensed / "feeds" / "camera.parquet").to_pandas()
    assert cams["queue_m"].max() > 10  # a signal queues somewhere in the peak


def test_probes_follow_the_configured_model(sensed: Path) -> None:
    truth = pq.read_table(sensed / "truth" / "probes.parquet").to_pandas()
    feed = pq.read_table(sensed / "feeds" / "probe.parquet").to_pandas()
    tripinfo = (sensed / "tripinfo.xml").read_text()
    vehicles = tripinfo.count("<tripinfo ")
    assert not truth["vehicle_id"].str.startswith("ped").any(), "a walker reported as a probe"
    share = truth["vehicle_id"].nunique() / vehicles
    assert abs(share - PENETRATION) < 0.08, share
    # 5 s between reports of one probe; about 2 % lost
    gaps = truth.sort_values("measured_at").groupby("probe_id")["measured_at"].diff().dropna()
    assert (gaps.dt.total_seconds() == 5).mean() > 0.95
    assert 0.0 < 1 - truth["reported"].mean() < 0.06
    # GPS noise: east/north errors with the configured standard deviation
    joined = feed.merge(truth, on=["probe_id", "measured_at"], suffixes=("", "_true"))
    north = (joined["lat_deg"] - joined["lat_deg_true"]) * 111_320
    east = (joined["lon_deg"] - joined["lon_deg_true"]) * 111_320 * np.cos(np.radians(joined["lat_deg_true"]))
    assert abs(north.std() - NOISE_M) < 1.0 and abs(east.std() - NOISE_M) < 1.0
    latency = (joined["received_at"] - joined["measured_at"]).dt.total_seconds()
    assert latency.min() >= 2.0 and 2.5 < latency.mean() < 3.5
    assert not feed["measured_at"].is_monotonic_increasing  # arrival order, as a real feed
    assert feed["probe_id"].str.fullmatch(r"probe:[0-9a-f]{12}").all()
    assert not set(feed["probe_id"]) & set(truth["vehicle_id"])  # pseudonyms, not SUMO ids


def test_sense_records_its_day_and_refuses_a_non_run(sensed: Path, tmp_path: Path) -> None:
    manifest = yaml.safe_load((sensed / "feeds" / "manifest.json").read_text())
    assert manifest["day"] == "2026-11-20"
    out = cli("twin", "sense", str(tmp_path), "--no-progress")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "config.yaml" in out.stderr
    assert "Traceback" not in out.stderr
