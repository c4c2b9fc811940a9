"""State estimation: fused per-edge speed, flow and density of a sensed run, scored against ground truth."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from roadtwin.errors import InputError
from roadtwin.sim.run import run_scenario
from roadtwin.sim.scenario import Scenario
from roadtwin.twin.estimation import (
    STATE_COLUMNS,
    edge_geometry,
    estimate_state,
    map_match,
    score_state,
    truth_at,
    write_state,
)
from roadtwin.twin.sensors import ProbeModel, SensorModel, sense
from roadtwin.twin.store import Store
from roadtwin.workspace import Workspace

SCENARIO = {
    "name": "est",
    "network": "yizhuang",
    "begin": "07:45",
    "end": "07:57",
    "seed": 3,
    "demand": {"veh_per_hour": 3000},
    "pedestrians": {"per_hour": 0},
}
CLI = ("-m", "roadtwin.cli")  # the installed CLI, as a user runs it


@pytest.fixture(scope="module")
def sensed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 12-minute run of the zone, sensed with 30 % probes; returns (run folder, network)."""
    ws = Workspace.at(tmp_path_factory.mktemp("ws"))
    run = run_scenario(Scenario.model_validate(SCENARIO), workspace=ws, progress=False, report=False).run_dir
    sense(run, model=SensorModel(probe=ProbeModel(penetration=0.3), day=dt.date(2026, 11, 20)))
    net = Path(yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["run"]["network_file"])
    return run, net


@pytest.fixture(scope="module")
def geometry(sensed: tuple[Path, Path]):
    return edge_geometry(sensed[1])


@pytest.mark.parametrize("resolution_s", [60, 300])
def test_every_edge_and_interval_gets_a_finite_state(sensed, geometry, resolution_s: int) -> None:
    run, net = sensed
    st = estimate_state(run / "feeds", net_file=net, resolution_s=resolution_s, geometry=geometry)
    times = st["interval_start"].drop_duplicates()
    assert len(st) == len(geometry.edges) * len(times)
    assert str(st["interval_start"].dt.tz) == "UTC"
    assert (times.dt.floor(f"{resolution_s}s") == times).all()
    assert set(STATE_COLUMNS) <= set(st.columns) and (st["resolution_s"] == resolution_s).all()
    for col in ("speed_kmh", "flow_veh_h", "density_veh_km", "confidence"):
        assert np.isfinite(st[col]).all(), col
        assert (st[col] >= 0).all(), col
    assert st["confidence"].between(0, 1).all()
    assert (st["speed_kmh"] <= st["free_flow_kmh"] * 1.1 + 1e-9).all()
    # Edges with no data are filled from neighbours or the zone, and say so with a low confidence.
    filled = st["sources"].isin(["neighbours", "zone"])
    assert (~filled).mean() > 0.8
    assert (st.loc[filled, "confidence"] <= 0.15).all()


def test_fusing_probes_beats_loops_alone(sensed, geometry) -> None:
    run, net = sensed
    truth = truth_at(run / "truth" / "edges.parquet", resolution_s=60)
    both = score_state(estimate_state(run / "feeds", net_file=net, geometry=geometry), truth)
    loops = score_state(
        estimate_state(run / "feeds", net_file=net, geometry=geometry, sources=("loop",)), truth
    )
    assert both["speed_mae_kmh"] < loops["speed_mae_kmh"]
    assert both["speed_mae_pct_free_flow"] < 25.0
    assert both["flow_mae_veh_h"] < 100.0
    assert both["rows"] > 1000


def test_truth_at_five_minutes_is_the_space_mean_speed() -> None:
    t0 = pd.Timestamp("2026-11-20 00:00", tz="UTC")
    truth = pd.DataFrame({
        "edge_id": ["e"] * 5, "measured_at": [t0 + pd.Timedelta(minutes=i) for i in range(5)],
        "speed_kmh": [10.0, 50.0, None, 50.0, 50.0], "flow_veh_h": [100.0, 500.0, 0.0, 500.0, 500.0],
        "density_veh_km": [10.0, 10.0, 0.0, 10.0, 10.0],
    })  # fmt: skip
    five = truth_at(truth, resolution_s=300)
    assert len(five) == 1
    assert five["speed_kmh"].iloc[0] == pytest.approx(1600 / 40)
    assert five["flow_veh_h"].iloc[0] == pytest.approx(320.0)


def test_map_match_uses_the_heading(geometry) -> None:
    geo = geometry
    k = int(np.argmax(geo.edges["length_m"].to_numpy()))
    at = np.flatnonzero(geo.point_edge == k)
    i = at[len(at) // 2]
    x, y = geo.points[i]
    lon, lat = geo.net.convertXY2LonLat(x, y)
    heading = geo.point_heading[i]
    got = map_match(np.array([lon, lon, 0.0]), np.array([lat, lat, 0.0]), np.array([heading, heading + 180, 0]),
                    geometry=geo)  # fmt: skip
    assert got[0] == geo.edges["edge"].iloc[k]
    assert got[1] != got[0]
    assert got[2] is None


def test_state_goes_into_the_run_and_the_store_once(sensed, geometry, tmp_path: Path) -> None:
    run, net = sensed
    st = estimate_state(run / "feeds", net_file=net, resolution_s=300, geometry=geometry)
    with Store(tmp_path / "s.duckdb") as store:
        path = write_state(st, run_dir=tmp_path / "run", store=store)
        write_state(st, run_dir=tmp_path / "run", store=store)
        n = store.con.execute("SELECT count(*) FROM state WHERE resolution_s = 300").fetchone()[0]
        cols = [r[0] for r in store.con.execute("DESCRIBE state").fetchall()]
    assert n == len(st)
    assert cols == list(STATE_COLUMNS)
    assert path == tmp_path / "run" / "state" / "edges_300.parquet"
    assert len(pd.read_parquet(path)) == len(st)


def test_bad_resolution_is_one_clear_error(sensed) -> None:
    run, net = sensed
    with pytest.raises(InputError, match="resolution_s"):
        estimate_state(run / "feeds", net_file=net, resolution_s=120)


def test_cli_estimate_writes_both_resolutions(sensed, tmp_path: Path) -> None:
    run, _ = sensed
    out = subprocess.run([sys.executable, *CLI, "twin", "estimate", str(run), "--workspace", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for res in (60, 300):
        assert (run / "state" / f"edges_{res}.parquet").is_file()
    with Store(tmp_path / "roadtwin.duckdb", read_only=True) as store:
        rows = dict(store.con.execute("SELECT resolution_s, count(*) FROM state GROUP BY 1").fetchall())
    assert set(rows) == {60, 300} and rows[60] > rows[300] > 0
