"""``roadtwin demo``: the main job runs end to end and writes its report (on a short window)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def _short_scenario(
    folder: Path, *, name: str, end: str, walkers: int, incidents: list[dict[str, object]] | None = None
) -> Path:
    """A few minutes of the zone's peak from 07:45 (4,000 veh/h), as a scenario YAML in ``folder``."""
    path = folder / f"{name}.yaml"
    data = {
        "name": name,
        "description": f"The peak from 07:45 to {end}.",
        "network": "yizhuang",
        "begin": "07:45",
        "end": end,
        "seed": 3,
        "demand": {"veh_per_hour": 4000},
        "pedestrians": {"per_hour": walkers},
        "incidents": incidents or [],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_demo_compares_fixed_time_with_the_best_controller_and_runs_the_twin(tmp_path: Path) -> None:
    scenario = _short_scenario(tmp_path, name="short_peak", end="07:55", walkers=200)
    ws = tmp_path / "ws"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "roadtwin.cli",
            "demo",
            "--workspace",
            str(ws),
            "--scenario",
            str(scenario),
            "--no-serve",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "fixed" in out.stdout and "rl:zone" in out.stdout  # the shipped zone policy, the best
    report = ws / "reports" / "demo.html"
    html = report.read_text()
    assert "fixed-time against rl:zone" in html
    assert html.count("data:image/png;base64,") >= 6  # comparison + two maps + two run plots + forecast
    assert "OpenStreetMap contributors" in html
    runs = sorted(p.name.split("__")[1] for p in (ws / "runs").iterdir())
    assert runs == ["fixed", "rl"]
    for run in (ws / "runs").iterdir():
        assert (run / "metrics.json").exists()
    # The twin: the fixed-time run was sensed, its state estimated and forecast into the store.
    assert "The twin: forecast against actual" in html and "persistence" in html
    assert "sensor feeds" in out.stdout and "issued 2 forecasts" in out.stdout
    fixed = next(p for p in (ws / "runs").iterdir() if "__fixed__" in p.name)
    assert (fixed / "feeds" / "loop.parquet").is_file() and (fixed / "state" / "edges_300.parquet").is_file()
    from roadtwin.dashboards.data import WorkspaceData

    forecasts, state, method = WorkspaceData(root=ws).twin_forecasts()
    assert method == "persistence" and forecasts is not None and state is not None
    assert set(forecasts["horizon_min"]) == {15, 30, 60} and len(state) == 2 * state["edge"].nunique()


def test_demo_rejects_an_unknown_controller_before_running(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roadtwin.cli", "demo", "--workspace", str(tmp_path), "--controller", "magic"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "controller" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_demo_switches_guidance_on_as_a_third_run(tmp_path: Path) -> None:
    incident = {"edge": "46_37", "lanes": [1, 2, 3], "begin": "07:45", "end": "07:50"}
    scenario = _short_scenario(
        tmp_path, name="short_incident", end="07:50", walkers=100, incidents=[incident]
    )
    ws = tmp_path / "ws"
    out = subprocess.run(
        [sys.executable, "-m", "roadtwin.cli", "demo", "--workspace", str(ws), "--scenario", str(scenario),
         "--routing", "guidance", "--penetration", "0.6", "--no-twin", "--no-serve"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    html = (ws / "reports" / "demo.html").read_text()
    assert "fixed-time against rl:zone and rl:zone+guidance@60%" in html
    runs = {p.name.split("__")[1]: p for p in (ws / "runs").iterdir()}
    assert set(runs) == {"fixed", "rl", "rl-guidance60"}
    config = yaml.safe_load((runs["rl-guidance60"] / "config.yaml").read_text())
    assert config["run"]["controller_options"]["routing"]["penetration"] == 0.6


def test_demo_rejects_an_unknown_routing_before_running(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roadtwin.cli", "demo", "--workspace", str(tmp_path), "--routing", "teleport"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "routing" in out.stderr
    assert not (tmp_path / "runs").exists()
