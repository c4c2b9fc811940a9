"""Motion-forecasting samples (WOMD layout) built from a real exported dataset of the zone."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from roadtwin.datasets.motion import (
    AGENT_TYPES,
    ROADGRAPH_TYPES,
    SIGNAL_STATES,
    build_samples,
    read_index,
)
from roadtwin.errors import InputError

#: Small budgets: a sample every 10 s, two targets each, in shards of eight.
SMALL = {"stride_s": 10.0, "max_targets": 2, "samples_per_shard": 8}


@pytest.fixture(scope="module")
def samples(exported_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_samples(exported_dataset, out=tmp_path_factory.mktemp("motion") / "samples", **SMALL)


def _shards(root: Path) -> dict[str, np.ndarray]:
    """Every shard of a samples folder, concatenated."""
    index = read_index(root)
    loaded = [np.load(root / s["file"]) for s in index["shards"]]
    return {key: np.concatenate([z[key] for z in loaded]) for key in loaded[0].files}


def test_samples_have_the_womd_keys_shapes_and_codes(samples: Path, exported_dataset: Path) -> None:
    index = read_index(samples)
    manifest = json.loads((exported_dataset / "manifest.json").read_text())
    assert index["split"] == manifest["split"]
    assert index["steps"] == {"past": 10, "current": 1, "future": 80, "hz": 10}
    data = _shards(samples)
    n = index["samples"]
    assert n >= 40, "5 minutes at one current time per 10 s, two targets each"
    for key, spec in index["keys"].items():
        assert data[key].shape == (n, *spec["shape"]), key
    assert data["state/past/x"].shape == (n, 128, 10) and data["state/future/x"].shape == (n, 128, 80)
    assert data["roadgraph_samples/xyz"].shape == (n, 256 * 20, 3)
    assert data["traffic_light_state/future/state"].shape == (n, 80, 16)

    # Agent-centric: the target is row 0, at the origin, heading +x, valid over the whole window.
    assert (data["state/tracks_to_predict"][:, 0] == 1).all()
    assert (data["state/tracks_to_predict"][:, 1:] == 0).all()
    for name in ("x", "y", "bbox_yaw"):
        assert np.abs(data[f"state/current/{name}"][:, 0, 0]).max() < 1e-4
    for part in ("past", "current", "future"):
        assert data[f"state/{part}/valid"][:, 0].all()
    # Agents sort nearest first; padding rows are -1 everywhere and invalid.
    types = data["state/type"]
    assert set(np.unique(types)) <= {-1.0, *map(float, AGENT_TYPES.values())}
    assert {AGENT_TYPES["vehicle"], AGENT_TYPES["pedestrian"]} <= set(np.unique(types).astype(int))
    padded = types == -1
    assert not data["state/current/valid"][padded].any()
    assert (data["state/future/x"][padded] == -1).all()
    assert padded.sum(axis=1).min() == 0, "a busy moment fills all 128 rows (the farthest are dropped)"

    roadgraph = set(np.unique(data["roadgraph_samples/type"]))
    assert roadgraph <= {-1, *ROADGRAPH_TYPES.values()}
    assert {ROADGRAPH_TYPES["LaneCenter-SurfaceStreet"], ROADGRAPH_TYPES["RoadEdgeBoundary"],
            ROADGRAPH_TYPES["Crosswalk"]} <= roadgraph  # fmt: skip
    lights = data["traffic_light_state/current/state"]
    valid = data["traffic_light_state/current/valid"].astype(bool)
    assert set(np.unique(lights[valid])) <= set(SIGNAL_STATES.values())
    assert {SIGNAL_STATES["GO"], SIGNAL_STATES["STOP"]} <= set(np.unique(lights[valid]))
    assert (lights[~valid] == -1).all()
    # A signal's stop point is near the target's road: within 200 m for the nearest one.
    near = np.where(valid[:, 0], np.hypot(data["traffic_light_state/current/x"][:, 0],
                                          data["traffic_light_state/current/y"][:, 0]), np.inf)  # fmt: skip
    assert np.median(near.min(axis=1)) < 200


def test_trajectories_are_sumo_records_at_whole_seconds(samples: Path, exported_dataset: Path) -> None:
    """Undo the centring: at whole seconds the 10 Hz track is SUMO's record, front bumper included."""
    index = read_index(samples)
    data = _shards(samples)
    traj = (
        pq.read_table(exported_dataset / "trajectories.parquet").to_pandas().set_index(["agent_id", "time_s"])
    )
    checked = 0
    for i in range(0, index["samples"], 3):
        ox, oy, oyaw = data["sample/origin"][i]
        t0 = float(data["sample/current_time_s"][i])
        c, s = math.cos(oyaw), math.sin(oyaw)
        for part, steps in (("past", range(-10, 0)), ("future", range(1, 81))):
            for j, step in enumerate(steps):
                if step % 10 or not data[f"state/{part}/valid"][i, 0, j]:
                    continue
                x, y = data[f"state/{part}/x"][i, 0, j], data[f"state/{part}/y"][i, 0, j]
                yaw = data[f"state/{part}/bbox_yaw"][i, 0, j] + oyaw
                length = data[f"state/{part}/length"][i, 0, j]
                gx, gy = ox + c * x - s * y, oy + s * x + c * y
                row = traj.loc[(str(data["sample/target_id"][i]), round(t0 + step / 10, 6))]
                if row["agent_type"] != "pedestrian":
                    gx, gy = gx + length / 2 * math.cos(yaw), gy + length / 2 * math.sin(yaw)
                assert abs(gx - row["x"]) < 0.02 and abs(gy - row["y"]) < 0.02
                assert abs(data[f"state/{part}/speed"][i, 0, j] - row["speed_mps"]) < 1e-3
                compass = (90 - math.degrees(yaw)) % 360
                assert min(abs(compass - row["heading_deg"]), 360 - abs(compass - row["heading_deg"])) < 0.01
                checked += 1
    assert checked > 100


def test_agents_are_not_extrapolated_past_their_records(samples: Path, exported_dataset: Path) -> None:
    index = read_index(samples)
    data = _shards(samples)
    traj = pq.read_table(
        exported_dataset / "trajectories.parquet", columns=["agent_id", "time_s"]
    ).to_pandas()
    last = traj.groupby("agent_id")["time_s"].max()
    first = traj.groupby("agent_id")["time_s"].min()
    valid = np.concatenate(
        [data["state/past/valid"], data["state/current/valid"], data["state/future/valid"]], 2
    )
    ended = started = 0
    for i in range(index["samples"]):
        when = data["sample/current_time_s"][i] + np.arange(-10, 81) / 10
        for a in np.flatnonzero(data["state/type"][i] >= 0):
            agent = index["agent_ids"][int(data["state/id"][i, a])]
            on = valid[i, a].astype(bool)
            assert on.any()
            assert when[on].max() <= last[agent] + 1e-6 and when[on].min() >= first[agent] - 1e-6
            ended += bool(when[-1] > last[agent])
            started += bool(when[0] < first[agent])
    assert ended > 10 and started > 10, "agents leave and enter inside windows"


def test_same_inputs_give_the_same_bytes_and_a_killed_build_resumes(
    samples: Path, exported_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "samples"
    # A real kill -9 after the third shard, from the progress callback, in a child process.
    code = (
        "import os, signal, sys\n"
        "from roadtwin.datasets.motion import build_samples\n"
        "def stop(done, total):\n"
        "    if done == 3: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"build_samples(sys.argv[1], out=sys.argv[2], progress=stop, **{SMALL!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(exported_dataset), str(out)], check=False)
    assert proc.returncode == -9
    assert not (out / "index.json").exists()
    done = sorted(p for p in out.glob("shard-*.npz") if ".tmp-" not in p.name)
    assert 3 <= len(done) < len(read_index(samples)["shards"])
    (out / "shard-00003.tmp-999.npz").write_bytes(b"half a shard")  # what a kill mid-write leaves
    stamps = {p.name: p.stat().st_mtime_ns for p in done}

    build_samples(exported_dataset, out=out, workers=1, **SMALL)  # the output does not depend on workers
    assert {p.name: p.stat().st_mtime_ns for p in done} == stamps, "finished shards are kept"
    assert not list(out.glob("*.tmp-*"))
    names = sorted(p.name for p in samples.iterdir())
    assert names == sorted(p.name for p in out.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (samples / name).read_bytes(), name

    # Other options replace the old shards instead of mixing with them.
    build_samples(exported_dataset, out=out, **{**SMALL, "max_targets": 1})
    assert read_index(out)["samples"] < read_index(samples)["samples"]


def test_a_folder_that_is_not_a_dataset_is_one_clear_line(exported_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"manifest\.json: expected a dataset folder"):
        build_samples(tmp_path)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"schema_version": "2.0"}))
    with pytest.raises(InputError, match=r"schema_version: expected 1\.x, got '2\.0'"):
        build_samples(fake)
    with pytest.raises(InputError, match="history_s"):
        build_samples(exported_dataset, history_s=1.05, out=tmp_path / "o")

    out = subprocess.run(
        [sys.executable, "-m", "roadtwin.cli", "datasets", "samples", str(fake), "--no-progress"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "schema_version" in out.stderr


def test_cli_writes_samples_with_options_from_yaml(exported_dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "samples.yaml"
    config.write_text(
        "stride_s: 30\nmax_targets: 1\nfuture_s: 3\nmax_agents: 16\ntarget_types: [pedestrian]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "roadtwin.cli", "datasets", "samples", str(exported_dataset), "--out",
         str(tmp_path / "s"), "--config", str(config), "--max-agents", "8", "--no-progress"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "samples/s" in out.stdout and "KiB/sample" in out.stdout
    index = read_index(tmp_path / "s")
    assert index["options"]["max_agents"] == 8 and index["steps"]["future"] == 30
    assert index["keys"]["state/future/x"]["shape"] == [8, 30]
    shard = np.load(tmp_path / "s" / index["shards"][0]["file"])
    assert index["samples"] > 0 and (shard["state/type"][:, 0] == AGENT_TYPES["pedestrian"]).all()


def test_a_tiny_model_learns_the_future_from_a_dataloader(samples: Path) -> None:
    torch = pytest.importorskip("torch")
    from roadtwin.datasets.motion import MotionDataset

    keys = ["state/past/x", "state/past/y", "state/past/valid", "state/future/x", "state/future/y",
            "state/future/valid"]  # fmt: skip
    data = MotionDataset(samples, keys=keys, cache_shards=64)
    assert len(data) == read_index(samples)["samples"] and data.split == "train"
    assert data[0]["state/future/valid"].dtype == torch.bool
    assert data.meta(0)["target_id"]
    loader = torch.utils.data.DataLoader(data, batch_size=16, sampler=data.sampler(seed=0))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 160))
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history = torch.cat([batch["state/past/x"][:, 0], batch["state/past/y"][:, 0]], dim=1)
        future = torch.stack([batch["state/future/x"][:, 0], batch["state/future/y"][:, 0]], dim=-1)
        pred = model(history).view(-1, 80, 2)
        mask = batch["state/future/valid"][:, 0]
        return ((pred - future) ** 2).sum(-1)[mask].mean()

    losses = []
    for _ in range(8):
        for batch in loader:
            optim.zero_grad()
            loss = loss_of(batch)
            loss.backward()
            optim.step()
            losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
