"""The RL routing agent: diversion points, the routing environment, training and ``rl-routing`` runs.

Everything runs on the 2 x 2 signalised grid of ``conftest.py`` with a lane of one of its inner roads
blocked, over five-minute windows.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("gymnasium")

from roadtwin.agents.routing_rl import RoutingEnv, diversion_points
from roadtwin.agents.scenarios import resolve_scenario
from roadtwin.errors import ConfigError, InputError
from roadtwin.workspace import Workspace

pytestmark = pytest.mark.timeout(300)

#: Five minutes, a decision a minute: five steps per episode.
WINDOW = ("07:00", "07:05")
DECISION_S = 60.0


@pytest.fixture(scope="module")
def incident_yaml(small_grid_net: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busy five minutes on the grid with one of the two lanes of road 1 -> 2 blocked."""
    path = tmp_path_factory.mktemp("routing-scenario") / "grid_incident.yaml"
    data = {
        "name": "grid_incident",
        "network": str(small_grid_net),
        "begin": WINDOW[0],
        "end": WINDOW[1],
        "seed": 1,
        "demand": {"veh_per_hour": 2400, "min_distance": 300, "interval": 300},
        "vehicle_mix": {"car": 1.0, "bus": 0.0, "truck": 0.0, "av": 0.0},
        "incidents": [{"edge": "1_2", "lanes": [1], "begin": WINDOW[0], "end": WINDOW[1]}],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env_kwargs(incident_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The scenario's SUMO inputs as :class:`RoutingEnv` arguments."""
    folder = tmp_path_factory.mktemp("routing-inputs")
    inputs = resolve_scenario(incident_yaml, workspace=Workspace.at(folder)).make_inputs(folder / "inputs", 1)
    return {
        "net_file": inputs.net_file,
        "route_files": list(inputs.route_files),
        "additional_files": list(inputs.additional_files),
        "begin": inputs.begin,
        "end": inputs.end,
        "sumo_args": list(inputs.extra_args),
        "decision_s": DECISION_S,
        "reward_scale": 50.0,
    }


# --- fast ---------------------------------------------------------------------------------------------


def test_diversion_points_are_the_same_from_the_file_and_the_live_network(small_grid_net: Path) -> None:
    from roadtwin.sim.backend import start
    from roadtwin.toolchain import binary

    every = diversion_points(small_grid_net, k=100)
    # every approach to the four signalised junctions (four arms each), none to the fringe nodes
    assert len(every) == 16
    assert all(int(e.split("_")[1]) <= 4 for e in every)
    top = diversion_points(small_grid_net, k=5)
    assert top == every[:5]
    session = start([binary("sumo"), "-n", str(small_grid_net), "--no-step-log", "true"], backend="traci")
    try:
        assert diversion_points(session.conn, k=100) == every
    finally:
        session.close()
    with pytest.raises(ConfigError, match="diversion point"):
        diversion_points(small_grid_net, k=0)
    with pytest.raises(InputError, match=r"missing\.net\.xml"):
        diversion_points(small_grid_net.parent / "missing.net.xml", k=3)


def test_routing_env_passes_gymnasium_check_env(env_kwargs: dict[str, object]) -> None:
    from gymnasium.utils.env_checker import check_env

    env = RoutingEnv(**env_kwargs, k=4)
    try:
        assert env.action_space.nvec.tolist() == [3, 3, 3, 3]
        assert env.observation_space.shape == (4 * 3 * 5 + 1,)
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_an_episode_runs_the_window_and_levels_gate_the_guidance(env_kwargs: dict[str, object]) -> None:
    import gymnasium

    env = gymnasium.make("roadtwin/Routing-v0", **env_kwargs, k=4, penetration=1.0, default_level=0.0)
    try:
        obs, info = env.reset(seed=3)
        assert info["time"] == 25200.0 and obs[-1] == pytest.approx(7 / 24)
        times, rewards, reroutes = [], [], []
        for _ in range(10):
            obs, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.int64))
            assert env.observation_space.contains(obs) and not terminated
            times.append(info["time"])
            rewards.append(reward)
            reroutes.append(info["reroutes"])
            if truncated:
                break
        assert times == [25200.0 + DECISION_S * k for k in range(1, 6)]
        # vehicles fill the network: the reward (minus the mean vehicles / 50) falls
        assert all(r < 0 for r in rewards[1:]) and rewards[-1] < rewards[0]
        # level 0 everywhere (and for vehicles near no point): guidance routes no one
        assert sum(reroutes) == 0
    finally:
        env.close()


def test_routing_training_refuses_dqn_and_bad_policies(incident_yaml: Path, tmp_path: Path) -> None:
    from roadtwin.agents.routing import make_router
    from roadtwin.agents.train import TrainConfig, train

    config = TrainConfig(scenario=str(incident_yaml), task="routing", algo="dqn")
    with pytest.raises(ConfigError, match="MultiDiscrete"):
        train(config, workspace=Workspace.at(tmp_path))
    assert not (tmp_path / "runs").exists()
    missing = tmp_path / "no-such-run"
    with pytest.raises(InputError, match="no-such-run"):
        make_router(f"rl-routing:{missing}", penetration=0.3)
    broken = tmp_path / "model.zip"
    broken.write_bytes(b"not a zip")
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"train": {}, "env": {}, "policy": {"task": "signals"}}), encoding="utf-8"
    )
    with pytest.raises(InputError, match="routing policy"):
        make_router(f"rl-routing:{broken}")


def test_importing_the_routing_agent_stays_light() -> None:
    code = (
        "import sys, roadtwin.agents.routing_rl, roadtwin.agents.routing as r;"
        "assert 'rl-routing' in r.router_names();"
        "heavy = [m for m in ('torch', 'stable_baselines3') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- training through the CLI, kill -9, resume, and the trained agent in a run ---------------------------


def _train_cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "roadtwin.cli", "agents", "train", *args]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_train_kill_9_resume_then_drive_a_run(incident_yaml: Path, tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from roadtwin.agents.base import make_controller
    from roadtwin.agents.combined import CombinedControl
    from roadtwin.agents.routing import make_router
    from roadtwin.agents.routing_rl import RLRouting
    from roadtwin.agents.train import latest_checkpoint
    from roadtwin.sim.run import run_inputs

    settings = tmp_path / "train.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "diversion_points": 4, "decision_s": DECISION_S, "penetration": 0.3, "reward_scale": 50.0,
                "n_steps": 10, "batch_size": 10, "n_epochs": 2,
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    total = 400
    proc = subprocess.Popen(
        _train_cli(
            [
                "--task", "routing", "--scenario", str(incident_yaml), "--timesteps", str(total),
                "--checkpoint-every", "10", "--eval-every", "400", "--no-progress",
                "--config", str(settings), "--workspace", str(tmp_path),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    runs: list[Path] = []
    try:
        deadline = time.monotonic() + 150
        last = None
        while time.monotonic() < deadline and proc.poll() is None:
            runs = list((tmp_path / "runs").glob("grid_incident__ppo__*"))
            last = latest_checkpoint(runs[0]) if runs else None
            if last is not None:
                break
            time.sleep(0.05)
        assert last is not None, (
            f"no checkpoint appeared: {proc.stderr.read().decode() if proc.poll() else ''}"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    run = runs[0]
    assert 0 < last[1] < total and not (run / "final_model.zip").exists()

    result = subprocess.run(
        _train_cli(["--resume", str(run), "--workspace", str(tmp_path)]),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert PPO.load(run / "final_model.zip", device="cpu").num_timesteps == total
    info = json.loads((run / "train.json").read_text())
    assert info["resumed_from"] >= last[1] and info["num_timesteps"] == total
    policy = yaml.safe_load((run / "config.yaml").read_text())["policy"]
    assert policy["task"] == "routing" and policy["k"] == 4 and len(policy["points"]) == 4
    assert policy["decision_s"] == DECISION_S and policy["penetration"] == 0.3
    assert policy["scenario"] == str(incident_yaml)

    # The trained agent drives a run with a fixed-time signal controller; the run's seed is the SUMO
    # seed the environment draws on reset(seed=7), so the environment replays the same run below.
    from gymnasium.utils import seeding

    sumo_seed = int(seeding.np_random(7)[0].integers(0, 2**31 - 1))
    router = make_router(f"rl-routing:{run}", penetration=0.3, seed=sumo_seed)
    assert isinstance(router, RLRouting) and router.label == "rl-routing@30%"
    control = CombinedControl(make_controller("fixed"), router)
    assert control.name == "fixed+rl-routing30"  # run ids: safe in paths and URLs
    ws = Workspace.at(tmp_path / "eval")
    sc = resolve_scenario(incident_yaml, workspace=ws)
    out = run_inputs(
        lambda folder: sc.make_inputs(folder, sumo_seed),
        name=sc.name,
        seed=sumo_seed,
        config=sc.config,
        workspace=ws,
        controller=control,
        progress=False,
        report=False,
    )
    metrics = json.loads((out.run_dir / "metrics.json").read_text())
    assert metrics["vehicles_inserted"] > 0
    assert "rl-routing" in (out.run_dir / "config.yaml").read_text()
    # a decision at the start and every decision_s after, as in the environment
    assert [t for t, _, _ in router.decisions] == [25200.0 + DECISION_S * k for k in range(5)]
    assert all(obs.shape == (policy["obs_size"],) for _, obs, _ in router.decisions)
    assert all(set(levels.tolist()) <= {0.0, 0.5, 1.0} for _, _, levels in router.decisions)

    # The environment, on the same inputs with the same policy, saw what the controller saw.
    inputs = sc.make_inputs(tmp_path / "replay", sumo_seed)
    env = RoutingEnv(
        net_file=inputs.net_file, route_files=inputs.route_files, additional_files=inputs.additional_files,
        begin=inputs.begin, end=inputs.end, sumo_args=inputs.extra_args, points=policy["points"],
        decision_s=DECISION_S, penetration=0.3, reward_scale=50.0,
    )  # fmt: skip
    try:
        obs, _ = env.reset(seed=7)
        seen, truncated = [], False
        while not truncated:
            seen.append(obs)
            action, _ = router.model.predict(obs, deterministic=True)
            obs, _, _, truncated, _ = env.step(action)
    finally:
        env.close()
    np.testing.assert_allclose(np.stack(seen), np.stack([o for _, o, _ in router.decisions]), atol=1e-6)
