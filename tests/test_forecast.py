"""Forecasting: day generation and its cache, baselines and metrics, training with resume, evaluation."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from roadtwin.errors import ConfigError
from roadtwin.sim.scenario import Scenario, builtin_scenario, load_scenario
from roadtwin.twin.dataset import generate_days, load_days
from roadtwin.workspace import Workspace

WINDOW = ("07:00", "07:12")

#: A model small enough to train in a second on the tiny days: 1-min steps, 3 min of history.
TINY = {"step_min": 1, "history": 3, "horizons_min": (1, 2, 3), "warmup_min": 2, "val_days": 1, "test_days": 1,
        "hidden": 8, "graph_layers": 1, "batch_size": 8, "threads": 1}  # fmt: skip


def _tiny_base() -> Scenario:
    data = load_scenario(builtin_scenario()).model_dump(mode="json")
    data["demand"]["veh_per_hour"] = 600
    return Scenario.model_validate(data)


@pytest.fixture(scope="module")
def tiny_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Workspace]:
    """Three 12-minute days of the zone at low demand (mesoscopic), generated once."""
    ws = Workspace.at(tmp_path_factory.mktemp("fc-ws"))
    folder = generate_days(n_days=3, workspace=ws, base_scenario=_tiny_base(), window=WINDOW, progress=False)
    return folder, ws


def test_days_hold_varied_per_minute_tensors(tiny_days: tuple[Path, Workspace]) -> None:
    folder, _ = tiny_days
    days = load_days(folder)
    assert days.count.shape == (3, 12, len(days.edges))
    assert days.count.sum() > 50  # vehicles entered edges
    assert np.all(days.distance_m[days.sampled_s == 0] == 0)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [d["file"] for d in manifest["days"]] == ["day_0000.npz", "day_0001.npz", "day_0002.npz"]
    levels = {d["demand_factor"] for d in manifest["days"]}
    assert len(levels) == 3  # each day draws its own demand level


def test_generation_resumes_skipping_finished_days(tiny_days: tuple[Path, Workspace], tmp_path: Path) -> None:
    folder, ws = tiny_days
    copy = tmp_path / "days"
    shutil.copytree(folder, copy)
    (copy / "day_0002.npz").unlink()  # killed while simulating day 2 ...
    (copy / "tmp" / "day_0002").mkdir(parents=True)  # ... leaving its work folder behind
    before = (copy / "day_0000.npz").stat().st_mtime_ns
    calls: list[int] = []
    generate_days(
        n_days=3, workspace=ws, base_scenario=_tiny_base(), window=WINDOW, folder=copy,
        progress=lambda done, total: calls.append(done),
    )  # fmt: skip
    assert calls == [3]  # only day 2 was simulated
    assert (copy / "day_0000.npz").stat().st_mtime_ns == before
    assert not (copy / "tmp").exists()
    again, original = load_days(copy, days=[2]), load_days(folder, days=[2])
    np.testing.assert_array_equal(again.count, original.count)  # day 2 is the same day when regenerated


def test_generation_refuses_a_folder_of_other_settings(tiny_days: tuple[Path, Workspace]) -> None:
    folder, ws = tiny_days
    with pytest.raises(ConfigError, match="window"):
        generate_days(n_days=1, workspace=ws, base_scenario=_tiny_base(), window=("07:00", "07:10"),
                      folder=folder, progress=False)  # fmt: skip


def test_baselines_and_metrics_on_a_hand_made_array() -> None:
    from roadtwin.twin.forecast import MAPE_FLOORS, forecast_metrics, historical_average, persistence

    values = np.array([[[10.0, 0.0], [20.0, 2.0], [30.0, 4.0]], [[30.0, 2.0], [40.0, 4.0], [50.0, 6.0]]])
    np.testing.assert_allclose(historical_average(values), [[20, 1], [30, 3], [40, 5]])
    np.testing.assert_array_equal(persistence(values, t=np.array([0]), horizon=2)[:, 0], [[10, 0], [30, 2]])
    m = forecast_metrics(
        np.array([100.0, 0.0, 200.0]), np.array([110.0, 30.0, 200.0]), floor=MAPE_FLOORS["flow"]
    )
    assert m["mae"] == pytest.approx(40 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(1000 / 3))
    assert m["mape"] == pytest.approx(100 * (10 / 100 + 30 / 60 + 0) / 3)  # 0 veh/h divides by the 60 floor


def test_line_graph_links_edges_end_to_start_without_u_turns() -> None:
    from roadtwin.twin.forecast import congestion_level, line_graph

    adj = line_graph(["a", "b", "b", "c"], ["b", "c", "a", "b"])  # a->b, b->c, b->a, c->b
    assert adj.tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    assert congestion_level(np.array([50.0, 25.0, 15.0, 5.0]), np.array([50.0] * 4)).tolist() == [0, 1, 2, 3]


def test_train_and_evaluate_write_a_complete_run(tiny_days: tuple[Path, Workspace], tmp_path: Path) -> None:
    from roadtwin.twin.forecast import ForecastConfig, evaluate, train

    run = tmp_path / "run"
    result = train(
        days_dir=tiny_days[0], out_dir=run, config=ForecastConfig(**TINY, epochs=2), progress=False
    )
    assert result["epochs"] == 2
    for name in ("config.yaml", "history.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).exists(), name
    out = evaluate(run_dir=run, latency_runs=10)
    rows = out["rows"]
    assert {(r["model"], r["variable"], r["horizon_min"]) for r in rows} == {
        (m, v, h)
        for m in ("model", "historical_average", "persistence")
        for v in ("flow", "speed")
        for h in (1, 2, 3)
    }
    assert all(np.isfinite(r["mae"]) and r["rmse"] >= r["mae"] for r in rows)
    assert 0 < out["latency_ms"] < 200
    assert (run / "metrics.csv").exists() and (run / "forecast.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="--resume"):
        train(days_dir=tiny_days[0], out_dir=run, config=ForecastConfig(**TINY, epochs=2), progress=False)


def test_replicas_keep_a_days_conditions_and_draw_its_noise_anew(
    tiny_days: tuple[Path, Workspace], tmp_path: Path
) -> None:
    from roadtwin.twin.dataset import generate_replicas, load_replicas
    from roadtwin.twin.forecast import ForecastConfig, evaluate, train

    folder, ws = tiny_days
    copy = tmp_path / "days"
    shutil.copytree(folder, copy)
    generate_replicas(folder=copy, days=[2], replicas=2, workspace=ws)
    day = load_days(copy, days=[2])
    reps = load_replicas(copy, days=[2], replicas=2)
    original = json.loads((copy / "day_0002.json").read_text())
    for k, rep in enumerate(reps):
        meta = json.loads((copy / "replicas" / f"r{k}" / "day_0002.json").read_text())
        for key in ("demand_factor", "peak_shift_min", "weather", "av_share", "incident"):
            assert meta[key] == original[key], key  # the day's conditions ...
        assert meta["scenario"]["seed"] != original["scenario"]["seed"]  # ... its random draws anew
        assert rep.count.shape == day.count.shape
        assert not np.array_equal(rep.count, day.count)
        assert abs(rep.count.sum() - day.count.sum()) < 0.25 * day.count.sum()
    assert not np.array_equal(reps[0].count, reps[1].count)

    kept = (copy / "replicas" / "r0" / "day_0002.npz").stat().st_mtime_ns
    (copy / "replicas" / "r1" / "day_0002.npz").unlink()  # killed while simulating it
    calls: list[tuple[int, int]] = []
    generate_replicas(
        folder=copy, days=[2], replicas=2, workspace=ws, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(2, 2)]  # only the missing replica was simulated again
    assert (copy / "replicas" / "r0" / "day_0002.npz").stat().st_mtime_ns == kept
    with pytest.raises(ConfigError, match="replicated days"):
        load_replicas(copy, days=[2], replicas=3)

    run = tmp_path / "run"
    train(days_dir=copy, out_dir=run, config=ForecastConfig(**TINY, epochs=1), progress=False)
    out = evaluate(run_dir=run, latency_runs=2, plot=False, replicas=2)
    assert out["test_days"] == [2] and out["replicas"] == 2
    oracle = {
        (r["variable"], r["horizon_min"]): r["mae"] for r in out["rows"] if r["model"] == "replica_mean"
    }
    assert set(oracle) == {(v, h) for v in ("flow", "speed") for h in (1, 2, 3)}
    for (var, h), mae in oracle.items():
        assert 0 < out["noise_floor"][f"{var}@{h}"] < mae  # the floor is below a mean of two draws


_TRAIN_SCRIPT = """
import sys
from pathlib import Path
from roadtwin.twin.forecast import ForecastConfig, train
cfg = ForecastConfig(**{tiny}, epochs={epochs}, patience=10_000)
train(days_dir=Path(sys.argv[1]), out_dir=Path(sys.argv[2]), config=cfg, progress=False)
"""


def test_training_resumes_after_a_kill(tiny_days: tuple[Path, Workspace], tmp_path: Path) -> None:
    import torch

    from roadtwin.twin.forecast import ForecastConfig, train

    epochs = 40
    run = tmp_path / "run"
    script = _TRAIN_SCRIPT.format(tiny=repr(TINY), epochs=epochs)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tiny_days[0]), str(run)])
    last = run / "checkpoints" / "last.pt"
    try:
        deadline = time.monotonic() + 60
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = torch.load(last, weights_only=False)["epoch"]
    assert 1 <= killed_at < epochs
    cfg = ForecastConfig(**TINY, epochs=epochs, patience=10_000)
    result = train(days_dir=tiny_days[0], out_dir=run, config=cfg, resume=True, progress=False)
    assert result["epochs"] == epochs
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == epochs + 1  # every epoch once, none repeated or lost


def test_model_maps_a_zone_window_to_every_edge_and_horizon(tiny_days: tuple[Path, Workspace]) -> None:
    import torch

    from roadtwin.twin.forecast import ForecastConfig, STForecaster, line_graph

    days = load_days(tiny_days[0])
    n = len(days.edges)
    model = STForecaster(
        adjacency=line_graph(days.edge_from, days.edge_to), n_horizons=3, hidden=16, temporal="gru"
    )
    out = model(torch.zeros(1, 12, n, 3), torch.zeros(1, 4), torch.ones(1, n, 3, 2))
    assert out.shape == (1, n, 3, 2)
    assert ForecastConfig().horizons_min == (15, 30, 60)


def test_importing_the_twin_does_not_import_torch() -> None:
    code = "import sys, roadtwin.twin, roadtwin.twin.commands, roadtwin.twin.dataset; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "cmd", [[], ["generate"], ["train"], ["eval"]], ids=lambda c: " ".join(c) or "forecast"
)
def test_forecast_commands_have_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from roadtwin.cli import main

    assert main(["twin", "forecast", *cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_cli_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from roadtwin.cli import main

    cfg = tmp_path / "train.yaml"
    cfg.write_text("epochs: 0\n")
    for args in (["eval", str(tmp_path / "no-run")], ["train", "--config", str(cfg)], ["train", "--resume"]):
        assert main(["twin", "forecast", *args]) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_a_trained_model_forecasts_the_twins_state(tiny_days: tuple[Path, Workspace], tmp_path: Path) -> None:
    import pandas as pd

    from roadtwin.twin.forecast import ForecastConfig, train
    from roadtwin.twin.predict import ModelForecaster, best_forecaster, issue_forecasts, score_forecasts

    cfg = {**TINY, "step_min": 5, "history": 1, "horizons_min": (5,), "warmup_min": 0}
    run = tiny_days[1].root / "forecast" / "tiny5"
    train(days_dir=tiny_days[0], out_dir=run, config=ForecastConfig(**cfg, epochs=1), progress=False)
    days = load_days(tiny_days[0])
    # The twin's 5-minute state of the zone from 07:00 to 07:10 (local time), as estimate_state writes it.
    times = pd.date_range("2026-11-20 07:00", periods=2, freq="300s", tz="Asia/Shanghai").tz_convert("UTC")
    state = pd.DataFrame([{"edge": e, "interval_start": t, "resolution_s": 300, "flow_veh_h": 100.0 + i,
                           "speed_kmh": 30.0} for e in days.edges for i, t in enumerate(times)])  # fmt: skip
    forecaster, label = best_forecaster(tiny_days[1], timezone="Asia/Shanghai")
    assert isinstance(forecaster, ModelForecaster) and "tiny5" in label
    out = issue_forecasts(state, forecaster=forecaster, horizons_min=(5,))
    assert set(out) == {"model", "historical_average"}
    for frame in out.values():
        assert (
            len(frame) == 2 * len(days.edges) and np.isfinite(frame[["flow_veh_h", "speed_kmh"]]).all().all()
        )
    scores = score_forecasts(out["model"], state)
    assert scores["n"].tolist() == [len(days.edges)] * 2  # the 07:05 issue's target is the 07:10 interval
    with pytest.raises(Exception, match="horizons"):
        issue_forecasts(state, forecaster=forecaster, horizons_min=(10,))
