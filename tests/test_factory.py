"""The scenario factory: a tiny factory on a local Ray, retries, reports and resumption."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from roadtwin.cli import main
from roadtwin.datasets import factory
from roadtwin.datasets.factory import FactoryOptions, generate, main_edges, plan_variants
from roadtwin.errors import ConfigError
from roadtwin.sim.scenario import load_scenario

_RAY_NAMES = ("raylet", "gcs_server", "default_worker.py", "ray::", "log_monitor.py", "dashboard/agent.py")


def _ray_pids() -> set[int]:
    """Pids of Ray's own processes (raylet, GCS, workers) on this machine."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(name in cmd for name in _RAY_NAMES):
            pids.add(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def base_yaml(small_grid_net: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-minute scenario on the 2x2 grid, as a YAML file (the factory's base)."""
    path = tmp_path_factory.mktemp("factory-base") / "grid.yaml"
    data = {
        "name": "grid",
        "network": str(small_grid_net),
        "begin": "07:00",
        "end": "07:10",
        "seed": 1,
        "demand": {"veh_per_hour": 1500, "min_distance": 300, "interval": 300,
                   "profile": [{"at": "07:00", "factor": 0.8}, {"at": "07:05", "factor": 1.0}]},
        "vehicle_mix": {"car": 0.9, "bus": 0.0, "truck": 0.0, "av": 0.1},
        "weather": "clear",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _options(base_yaml: Path, tmp_path: Path, **kw: object) -> FactoryOptions:
    fields: dict[str, object] = {
        "scenario": str(base_yaml), "count": 3, "seed": 7, "duration": 120, "num_cpus": 2,
        "workspace": tmp_path / "ws", "out": tmp_path / "out", "progress": False,
    }  # fmt: skip
    fields.update(kw)
    return FactoryOptions.model_validate(fields)


def test_plan_is_a_function_of_seed_and_index(base_yaml: Path, small_grid_net: Path) -> None:
    base = load_scenario(base_yaml)
    edges = main_edges(small_grid_net)
    assert edges and all(len(lanes) >= 2 for lanes, _ in edges.values())
    plan = plan_variants(base, count=12, seed=3, edges=edges, end=base.begin + 120)
    again = plan_variants(base, count=14, seed=3, edges=edges, end=base.begin + 120)
    assert [v.id for v in plan] == [v.id for v in again[:12]]  # more variants later only adds new ones
    assert len({v.id for v in plan}) == 12
    assert plan[0].id != plan_variants(base, count=1, seed=4, edges=edges)[0].id
    assert len({v.scenario.weather.condition for v in plan}) >= 3
    assert len({v.scenario.vehicle_mix.av for v in plan}) == 12
    incidents = [inc for v in plan for inc in v.scenario.incidents]
    assert incidents and all(inc.edge in edges and base.begin <= inc.begin < inc.end <= base.begin + 120
                             for inc in incidents)  # fmt: skip
    assert all(v.scenario.end == base.begin + 120 for v in plan)
    # Only the named dimensions vary; the weather drawn for variant i does not depend on the others.
    weather_only = plan_variants(base, count=12, seed=3, vary=["weather"], edges=edges)
    assert [v.scenario.weather for v in weather_only] == [v.scenario.weather for v in plan]
    assert {v.scenario.vehicle_mix.av for v in weather_only} == {0.1}
    assert all(v.scenario.demand == base.demand and not v.scenario.incidents for v in weather_only)


def test_bad_options_fail_in_one_line(base_yaml: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="vary"):
        _options(base_yaml, tmp_path, vary="weather,sunshine")
    with pytest.raises(ConfigError, match="duration"):
        generate(_options(base_yaml, tmp_path, end="07:05"))
    assert (
        main(["datasets", "generate", "--scenario", str(base_yaml), "--vary", "wind", "--no-progress"]) == 2
    )


def test_factory_on_local_ray(base_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _ray_pids()
    options = _options(base_yaml, tmp_path, max_retries=1)
    # Variant 1 fails once and succeeds on its retry; variant 2 fails every time.
    report = generate(options, faults={1: 1, 2: 5})
    by_index = {r.variant.index: r for r in report.results}
    assert [by_index[i].status for i in range(3)] == ["ok", "ok", "failed"]
    assert [by_index[i].attempts for i in range(3)] == [1, 2, 2]
    assert "injected fault" in by_index[2].error
    # Ray's processes are gone once generate returns.
    deadline = time.monotonic() + 15
    while (_ray_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not (_ray_pids() - before)

    out = options.out
    assert out is not None
    plan = list(csv.DictReader((out / "variants.csv").open(encoding="utf-8")))
    rows = list(csv.DictReader((out / "report.csv").open(encoding="utf-8")))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"] and rows[2]["attempts"] == "2"
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["counts"] == {
        "ok": 2, "skipped": 0, "failed": 1,
    }  # fmt: skip
    assert len({(r["weather"], r["av_share"], r["demand_scale"]) for r in plan}) == 3
    for row in plan[:2]:
        dataset = out / row["variant"]
        assert (dataset / "manifest.json").is_file()
        meta = yaml.safe_load((dataset / "scenario.yaml").read_text(encoding="utf-8"))
        scenario = meta.get("scenario", meta)
        assert scenario["weather"]["condition"] == row["weather"]
        assert abs(scenario["vehicle_mix"]["av"] - float(row["av_share"])) < 1e-9
        assert abs(scenario["demand"]["veh_per_hour"] - 1500 * float(row["demand_scale"])) < 0.1
        assert (scenario["incidents"][0]["edge"] if scenario["incidents"] else "") == row["incident_edge"]
        assert scenario["seed"] == int(row["seed"])
        weather = json.loads((dataset / "weather.json").read_text(encoding="utf-8"))
        assert weather["condition"] == row["weather"]
        manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["seed"] == int(row["seed"]) and manifest["files"]["trajectories.parquet"]["rows"] > 0
        assert rows[int(row["index"])]["split"] == manifest["split"]
    assert not (out / plan[2]["variant"] / "manifest.json").exists()
    assert not any((tmp_path / "ws" / "runs").iterdir())  # run folders are removed after export

    # The failed variant alone runs again (here in-process); the done ones are skipped.
    again = generate(options, local=True)
    assert [r.status for r in again.results] == ["skipped", "skipped", "ok"]

    # Everything done: the CLI skips all of it without starting Ray, and exits 0.
    capsys.readouterr()
    t0 = time.perf_counter()
    argv = ["datasets", "generate", "--scenario", str(base_yaml), "--count", "3", "--seed", "7",
            "--duration", "120", "--out", str(out), "--workspace", str(tmp_path / "ws"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert time.perf_counter() - t0 < 10
    assert "0 generated, 3 already done, 0 failed" in capsys.readouterr().out
    assert not (out / ".work").exists()
    splits = json.loads((out / "report.json").read_text(encoding="utf-8"))["splits"]
    manifests = [json.loads((out / r["variant"] / "manifest.json").read_text(encoding="utf-8")) for r in plan]
    assert splits == {s: sum(m["split"] == s for m in manifests) for s in {m["split"] for m in manifests}}


def test_cli_exits_1_when_a_variant_failed(
    base_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = factory.generate

    def failing(options: FactoryOptions) -> factory.FactoryReport:
        return real(options, faults={0: 9}, local=True)

    monkeypatch.setattr(factory, "generate", failing)
    code = main(["datasets", "generate", "--scenario", str(base_yaml), "--count", "1", "--duration", "60",
                 "--out", str(tmp_path / "out"), "--workspace", str(tmp_path / "ws"), "--no-progress"])  # fmt: skip
    assert code == 1
    captured = capsys.readouterr()
    assert "1 failed of 1 variants" in captured.out
    assert "injected fault" in captured.err
    assert os.path.exists(tmp_path / "out" / "report.csv")
