"""Dataset export: a recorded zone run becomes the layout of datasets/SCHEMA.md, resumes after a kill,
and refuses bad input with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from roadtwin.datasets import export_run, split_for_seed
from roadtwin.errors import ConfigError, InputError

TRAJECTORY_COLUMNS = [
    "agent_id", "agent_type", "vtype", "time_s", "x", "y", "lon", "lat", "heading_deg", "speed_mps",
    "accel_mps2", "lane", "length_m", "width_m",
]  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roadtwin.cli", *args], capture_output=True, text=True)


def test_a_recorded_run_has_native_fcd_parquet_and_signal_changes(recorded_run: Path) -> None:
    config = yaml.safe_load((recorded_run / "config.yaml").read_text())
    assert config["run"]["record"] == ["fcd", "signals"]
    fcd = pq.read_table(recorded_run / "fcd.parquet")
    assert fcd.num_rows - fcd["vehicle_id"].null_count > 20_000
    assert "vehicle_acceleration" in fcd.column_names
    walkers = pq.read_table(recorded_run / "fcd-persons.parquet")
    assert walkers.num_rows - walkers["person_id"].null_count > 1_000, "walkers are recorded"
    # persons in their own file: SUMO logs no error per person row
    assert "Incomplete attribute set" not in (recorded_run / "sumo-errors.log").read_text()
    assert (recorded_run / "signals.xml").read_text().count("<tlsState ") > 500
    assert not list(recorded_run.glob("*.tmp*"))


def test_export_writes_every_file_of_the_schema_with_a_true_manifest(
    recorded_run: Path, exported_dataset: Path
) -> None:
    manifest = json.loads((exported_dataset / "manifest.json").read_text())
    assert manifest["schema_version"] == "1.0"
    assert manifest["run_id"] == recorded_run.name
    assert manifest["split"] == split_for_seed(42)
    for rel in (
        "scenario.yaml", "weather.json", "trajectories.parquet", "signals.parquet", "map/lanes.parquet",
        "map/lane_boundaries.parquet", "map/crosswalks.parquet", "map/stop_lines.parquet", "map/network.xodr",
    ):  # fmt: skip
        assert rel in manifest["files"], rel
    for rel, entry in manifest["files"].items():
        path = exported_dataset / rel
        assert path.stat().st_size == entry["bytes"], rel
        if rel.endswith(".parquet"):
            assert pq.ParquetFile(path).metadata.num_rows == entry["rows"], rel
    # nothing half-written, no bookkeeping left behind
    assert not [p for p in exported_dataset.rglob("*") if ".tmp" in p.name or p.name == ".progress.json"]


def test_trajectories_hold_every_agent_sorted_with_lonlat_and_dimensions(
    recorded_run: Path, exported_dataset: Path
) -> None:
    traj = pq.read_table(exported_dataset / "trajectories.parquet")
    assert traj.column_names == TRAJECTORY_COLUMNS
    fcd = pq.read_table(recorded_run / "fcd.parquet", columns=["vehicle_id"])
    walkers = pq.read_table(recorded_run / "fcd-persons.parquet", columns=["person_id"])
    recorded = (
        fcd.num_rows - fcd["vehicle_id"].null_count + walkers.num_rows - walkers["person_id"].null_count
    )
    assert traj.num_rows == recorded
    df = traj.to_pandas()
    kinds = set(df["agent_type"])
    assert {"car", "av", "pedestrian"} <= kinds <= {"car", "bus", "truck", "av", "pedestrian"}
    keys = list(zip(df["time_s"], df["agent_id"], strict=True))
    assert keys == sorted(keys)
    # the built-in zone: Yizhuang, Beijing
    assert df["lon"].between(116.48, 116.55).all() and df["lat"].between(39.76, 39.83).all()
    peds = df[df["agent_type"] == "pedestrian"]
    assert (peds["width_m"] < 1).all() and (peds["accel_mps2"] == 0).all()
    assert not peds["lane"].isna().any()
    buses = df[df["agent_type"] == "bus"]
    assert buses.empty or (buses["length_m"] == 12).all()
    cars = df[df["agent_type"] != "pedestrian"]
    assert cars["lane"].str.contains("_").all()
    assert (df["speed_mps"] >= 0).all() and cars["accel_mps2"].abs().max() < 12


def test_signals_give_a_state_for_every_link_every_step(exported_dataset: Path) -> None:
    signals = pq.read_table(exported_dataset / "signals.parquet").to_pandas()
    manifest = json.loads((exported_dataset / "manifest.json").read_text())
    window = manifest["window"]
    steps = int((window["end_s"] - window["begin_s"]) / window["step_length_s"])
    per_step = signals.groupby("time_s").size()
    assert len(per_step) == steps and per_step.nunique() == 1
    assert set(signals["state"].astype(str)) <= set("GgyrsuoO")
    assert {"G", "r", "y"} <= set(signals["state"].astype(str))
    assert signals["from_lane"].notna().mean() > 0.95
    # every controlled link changes state over five minutes of fixed-time signals
    changes = signals.groupby(["tls_id", "link_index"], observed=True)["state"].nunique()
    assert (changes > 1).mean() > 0.9


def test_map_layers_are_geoparquet_and_opendrive(exported_dataset: Path) -> None:
    import geopandas as gpd

    lanes = gpd.read_parquet(exported_dataset / "map/lanes.parquet")
    assert lanes.crs.to_epsg() == 4326
    assert {"driving", "sidewalk", "crossing", "walkingarea"} <= set(lanes["kind"])
    bounds = gpd.read_parquet(exported_dataset / "map/lane_boundaries.parquet")
    assert set(bounds["side"]) == {"left", "right"}
    assert len(bounds) == 2 * lanes["kind"].isin(["driving", "sidewalk"]).sum()
    crosswalks = gpd.read_parquet(exported_dataset / "map/crosswalks.parquet")
    assert len(crosswalks) > 50 and crosswalks["junction_id"].str.len().gt(0).all()
    stops = gpd.read_parquet(exported_dataset / "map/stop_lines.parquet")
    assert stops["tls_id"].notna().sum() > 100
    # a stop line is as long as its lane is wide
    lens = np.hypot(
        np.diff(np.stack(stops["x"].to_numpy()), axis=1), np.diff(np.stack(stops["y"].to_numpy()), axis=1)
    )
    widths = lanes.set_index("lane_id").loc[stops["lane_id"], "width_m"].to_numpy()
    assert np.allclose(lens.ravel(), widths, atol=0.01)
    xodr = (exported_dataset / "map/network.xodr").read_text(encoding="utf-8")
    assert "<OpenDRIVE>" in xodr and "generated on" not in xodr


def test_split_is_a_deterministic_function_of_the_seed() -> None:
    splits = [split_for_seed(s) for s in range(3000)]
    assert splits == [split_for_seed(s) for s in range(3000)]
    share = Counter(splits)
    assert abs(share["train"] / 3000 - 0.8) < 0.03
    assert abs(share["val"] / 3000 - 0.1) < 0.02 and abs(share["test"] / 3000 - 0.1) < 0.02


def test_a_killed_export_resumes_to_the_same_bytes(
    recorded_run: Path, exported_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    code = f"from roadtwin.datasets import export_run; export_run({str(recorded_run)!r}, out={str(out)!r}, progress=False)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    progress = out / ".progress.json"
    deadline = time.monotonic() + 120
    files: dict[str, object] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            files = json.loads(progress.read_text())["files"]
        except (OSError, ValueError, KeyError):
            files = {}
        if len(files) >= 3:  # trajectories written, the rest to go
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert not (out / "manifest.json").exists()
    # whatever is visible under a final name is whole: entered in the progress file with its size
    entered = json.loads(progress.read_text())["files"]
    for path in out.rglob("*"):
        if path.is_file() and ".tmp" not in path.name and path.name != ".progress.json":
            rel = path.relative_to(out).as_posix()
            assert rel not in entered or path.stat().st_size == entered[rel]["bytes"], rel

    export_run(recorded_run, out=out, progress=False)
    resumed = json.loads((out / "manifest.json").read_text())["files"]
    whole = json.loads((exported_dataset / "manifest.json").read_text())["files"]
    assert {k: v["sha256"] for k, v in resumed.items()} == {k: v["sha256"] for k, v in whole.items()}
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name == ".progress.json"]


def test_a_complete_export_is_left_alone_and_overwrite_replaces_it(
    recorded_run: Path, tmp_path: Path
) -> None:
    out = export_run(recorded_run, out=tmp_path / "d", progress=False)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    export_run(recorded_run, out=out, progress=False)
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    (out / "stray.txt").write_text("x")
    export_run(recorded_run, out=out, overwrite=True, progress=False)
    assert not (out / "stray.txt").exists() and (out / "manifest.json").is_file()


def test_bad_input_is_one_clear_line(recorded_run: Path, tmp_path: Path) -> None:
    out = _cli(
        "datasets",
        "export",
        "no_such_run__fixed__1__x",
        "--workspace",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no_such_run" in out.stderr and "run folder" in out.stderr

    bare = tmp_path / "bare_run"
    bare.mkdir()
    (bare / "config.yaml").write_text("run: {seed: 1}\n")
    with pytest.raises(InputError, match="--record fcd"):
        export_run(bare, out=tmp_path / "o2")

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    out = _cli("datasets", "export", str(recorded_run), "--out", str(busy), "--no-progress")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unfinished export" in out.stderr
    assert (busy / "notes.txt").read_text() == "mine"


def test_sim_run_record_option_parses_and_rejects_unknown_kinds() -> None:
    from roadtwin.sim.commands import RunOptions

    assert RunOptions(scenario=Path("s.yaml"), record="fcd, signals").record == ["fcd", "signals"]
    assert RunOptions(scenario=Path("s.yaml"), record=["fcd"]).record == ["fcd"]
    from roadtwin.config import load_options

    with pytest.raises(ConfigError, match="record"):
        load_options(RunOptions, config=None, scenario="s.yaml", record="fcd,video")


def test_sim_run_record_is_settable_from_the_yaml_config(tmp_path: Path) -> None:
    from roadtwin.config import load_options
    from roadtwin.sim.commands import RunOptions

    config = tmp_path / "run.yaml"
    config.write_text("scenario: s.yaml\nrecord: [fcd, signals]\n")
    assert load_options(RunOptions, config=config).record == ["fcd", "signals"]
    # the command line wins over the file
    assert load_options(RunOptions, config=config, record="fcd").record == ["fcd"]


def test_a_run_is_found_by_folder_or_by_id_in_its_workspace(recorded_run: Path) -> None:
    from roadtwin.datasets import resolve_run

    assert resolve_run(recorded_run) == recorded_run
    assert (
        resolve_run(recorded_run.name, workspace=recorded_run.parents[1]).resolve() == recorded_run.resolve()
    )
