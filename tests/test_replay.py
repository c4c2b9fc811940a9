"""The twin on an observed day: feeds into the store, estimated state, forecasts issued, scored and stored."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from roadtwin.errors import InputError
from roadtwin.sim.run import run_scenario
from roadtwin.sim.scenario import Scenario
from roadtwin.twin.predict import FORECAST_COLUMNS, issue_forecasts, score_forecasts
from roadtwin.twin.replay import replay_day
from roadtwin.twin.sensors import SensorModel, sense
from roadtwin.workspace import Workspace

SCENARIO = {
    "name": "replay",
    "network": "yizhuang",
    "begin": "07:45",
    "end": "08:00",
    "seed": 5,
    "demand": {"veh_per_hour": 2400},
    "pedestrians": {"per_hour": 0},
}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path, object]:
    """A 15-minute run of the zone, sensed and replayed through the twin into its workspace's store."""
    ws = Workspace.at(tmp_path_factory.mktemp("ws"))
    run = run_scenario(Scenario.model_validate(SCENARIO), workspace=ws, progress=False, report=False).run_dir
    sense(run, model=SensorModel(day=dt.date(2026, 11, 20)))
    result = replay_day(run, workspace=ws, horizons_min=(5, 10), warmup_min=0)
    return ws, run, result


def _state(values: list[float], *, edges: int = 2) -> pd.DataFrame:
    times = pd.date_range("2026-11-20 07:00", periods=len(values), freq="300s", tz="Asia/Shanghai")
    return pd.DataFrame(
        [{"edge": f"e{k}", "interval_start": t.tz_convert("UTC"), "resolution_s": 300,
          "flow_veh_h": v + k, "speed_kmh": 30.0 + v / 100 + k}
         for k in range(edges) for t, v in zip(times, values, strict=True)]
    )  # fmt: skip


def test_persistence_forecasts_line_up_with_the_state_they_predict() -> None:
    state = _state([100.0, 200.0, 300.0, 400.0, 500.0, 600.0])
    fc = issue_forecasts(state, horizons_min=(5, 15))["persistence"]
    assert list(fc.columns) == list(FORECAST_COLUMNS)
    assert ((fc["target_at"] - fc["issued_at"]) == pd.to_timedelta(fc["horizon_min"], unit="min")).all()
    # Issued at 07:10 (end of the 07:05 interval, flow 200) for the interval ending 07:25 (07:20, flow 500).
    row = fc[(fc["edge"] == "e0") & (fc["horizon_min"] == 15)].iloc[1]
    assert row["issued_at"] == pd.Timestamp("2026-11-20 07:10", tz="Asia/Shanghai")
    assert row["flow_veh_h"] == 200.0
    scores = score_forecasts(fc, state).set_index(["variable", "horizon_min"])
    # A series rising by 100 veh/h per 5 minutes: persistence is 100 (5 min) and 300 (15 min) behind.
    assert scores.loc[("flow", 5), "mae"] == pytest.approx(100.0)
    assert scores.loc[("flow", 15), "mae"] == pytest.approx(300.0)
    assert scores.loc[("flow", 15), "n"] == 2 * 3  # issued at 07:05 .. 07:15, targets up to 07:30


def test_forecasts_refuse_horizons_off_the_state_resolution() -> None:
    with pytest.raises(InputError, match="horizons_min"):
        issue_forecasts(_state([1.0, 2.0]), horizons_min=(7,))
    assert issue_forecasts(_state([1.0, 2.0]), first_issue=pd.Timestamp("2030-01-01", tz="UTC"))[
        "persistence"
    ].empty


def test_an_observed_day_goes_into_the_store(replayed) -> None:
    ws, _, result = replayed
    import duckdb

    con = duckdb.connect(str(ws.store_path), read_only=True)
    try:
        per_res = dict(con.execute("SELECT resolution_s, count(*) FROM state GROUP BY 1").fetchall())
        methods = dict(con.execute("SELECT method, count(*) FROM forecasts GROUP BY 1").fetchall())
        loops = con.execute("SELECT count(*) FROM obs_loop").fetchall()[0][0]
    finally:
        con.close()
    edges = result.state[300]["edge"].nunique()
    assert edges > 200 and per_res == {300: edges * 3, 60: edges * 15}  # 15 minutes of the zone
    assert loops > 0 and result.rows_ingested > 0 and result.quarantined == 0
    assert result.forecaster == "persistence" and "persistence" in result.label
    # Issued at 07:50, 07:55 and 08:00, 2 horizons, every edge.
    assert methods == {"persistence": 3 * 2 * edges}
    scores = result.scores.set_index(["variable", "horizon_min"])
    assert scores.loc[("flow", 5), "n"] == 2 * edges and scores.loc[("flow", 10), "n"] == edges
    assert 0 < scores.loc[("speed", 5), "mae"] < 20 and np.isfinite(scores["mape"]).all()


def test_the_dashboard_reads_the_observed_day(replayed) -> None:
    from roadtwin.dashboards.data import WorkspaceData

    ws, _, result = replayed
    data = WorkspaceData(root=ws.root)
    forecasts, state, method = data.twin_forecasts()
    assert method == "persistence" and forecasts is not None and state is not None
    assert len(forecasts) == len(result.forecasts["persistence"])
    assert (
        forecasts["at"].min().strftime("%H:%M") == "07:55" and state["at"].min().strftime("%H:%M") == "07:50"
    )
    local = data.estimated_state()
    assert local is not None and sorted(local["tod_s"].unique()) == [27900.0, 28200.0, 28500.0]


def test_issue_command_rewrites_the_forecasts_once(replayed) -> None:
    ws, _, result = replayed
    cmd = [sys.executable, "-m", "roadtwin.cli", "twin", "forecast", "issue", "--workspace", str(ws.root),
           "--persistence", "--config"]  # fmt: skip
    config = ws.root / "issue.yaml"
    config.write_text("horizons_min: [5, 10]\nwarmup_min: 0\n")
    out = subprocess.run([*cmd, str(config)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "persistence" in out.stdout and "forecast rows written" in out.stdout
    import duckdb

    con = duckdb.connect(str(ws.store_path), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM forecasts").fetchall()[0][0]
    finally:
        con.close()
    assert n == len(result.forecasts["persistence"])  # the same forecasts replace themselves


def test_replay_refuses_a_run_without_feeds(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="feeds"):
        replay_day(tmp_path, workspace=Workspace.at(tmp_path / "ws"))
