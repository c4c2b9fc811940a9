"""Training with stable-baselines3 on real SUMO: tiny budgets on 5-minute windows of RESCO's cologne nets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("supersuit")

from roadtwin.agents.train import TrainConfig, latest_checkpoint, train
from roadtwin.errors import ConfigError, InputError
from roadtwin.sim import resco
from roadtwin.workspace import Workspace

try:
    resco.resco_dir()
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip("sumo-rl (the bench extra) is not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)

#: Five minutes of cologne1: 30 decisions per episode.
TINY = {"duration_s": 300, "progress": False, "checkpoint_every": 32, "eval_every": 64}


def _descendants(pid: int) -> set[int]:
    """Process ids below ``pid`` (from /proc; no psutil needed)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _describe(pids: set[int]) -> dict[int, str]:
    """Command line of each process (for a failure message)."""
    out = {}
    for pid in pids:
        try:
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:300]
        except OSError:
            out[pid] = "?"
    return out


def _train_argv() -> list[str]:
    """``roadtwin agents train``."""
    return [sys.executable, "-m", "roadtwin.cli", "agents", "train"]


def _run_cli(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_train_argv(), *args], capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_training_run_folder_is_complete(tmp_path: Path, algo: str) -> None:
    from stable_baselines3 import DQN, PPO

    config = TrainConfig(
        scenario="cologne1",
        algo=algo,
        total_timesteps=128,
        n_steps=32,
        batch_size=32,
        learning_starts=32,
        **TINY,
    )
    run = train(config, workspace=Workspace.at(tmp_path))
    assert run.name.startswith(f"cologne1__{algo}__0__")
    saved = (run / "config.yaml").read_text()
    assert f"algo: {algo}" in saved and "obs_pad" in saved
    assert sorted(p.name for p in (run / "checkpoints").glob("model_*.zip")) == [
        f"model_{n}_steps.zip" for n in (128, 32, 64, 96)
    ]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "best" / "best_model.zip").is_file()
    assert json.loads((run / "best" / "best.json").read_text())["num_timesteps"] in (64, 128)
    model = (PPO if algo == "ppo" else DQN).load(run / "final_model.zip", device="cpu")
    assert model.num_timesteps == 128
    assert json.loads((run / "train.json").read_text())["num_timesteps"] == 128
    buffers = list((run / "checkpoints").glob("replay_buffer_*_steps.pkl"))
    assert [p.name for p in buffers] == (["replay_buffer_128_steps.pkl"] if algo == "dqn" else [])
    assert not list(run.rglob("*.tmp-*"))  # everything renamed when whole


def _eval_rewards(run: Path) -> list[tuple[int, float]]:
    """``(step, eval/mean_reward)`` of every evaluation, from the run's TensorBoard logs."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    out = []
    for path in sorted((run / "tb").glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "eval/mean_reward":
                    out.append((int(event.step), float(tensor_util.make_ndarray(value.tensor).item())))
    return sorted(out)


@pytest.mark.parametrize("scenario", ["cologne1", "cologne3"])
def test_every_evaluation_replays_the_same_episodes(tmp_path: Path, scenario: str) -> None:
    # A policy that does not learn (learning rate 1e-12) scores the same in every evaluation only if
    # each one replays the same SUMO seeds (otherwise the best model is whichever drew the easiest).
    config = TrainConfig(
        scenario=scenario, total_timesteps=96 if scenario == "cologne1" else 288, n_steps=32, batch_size=32,
        learning_rate=1e-12, eval_episodes=2, **{**TINY, "eval_every": 32 if scenario == "cologne1" else 96},
    )  # fmt: skip
    run = train(config, workspace=Workspace.at(tmp_path))
    rewards = _eval_rewards(run)
    assert len(rewards) == 3, rewards
    assert len({r for _, r in rewards}) == 1, rewards


def test_shared_policy_on_three_signals_in_two_processes(tmp_path: Path) -> None:
    before = _descendants(os.getpid())
    config = TrainConfig(
        scenario="cologne3", n_envs=2, total_timesteps=192, n_steps=16, batch_size=32,
        duration_s=300, progress=False, checkpoint_every=96, eval_every=96,
    )  # fmt: skip
    run = train(config, workspace=Workspace.at(tmp_path))
    import yaml

    policy = yaml.safe_load((run / "config.yaml").read_text())["policy"]
    assert policy["shared"] is True and len(policy["tls_ids"]) == 3
    assert policy["obs_pad"] == max(policy["obs_sizes"]) and policy["act_pad"] == max(policy["n_actions"])
    # 2 environments x 3 signals = 6 agent steps per environment step; rollouts of 16 x 6 = 96.
    assert json.loads((run / "train.json").read_text())["num_timesteps"] == 192
    assert (run / "best" / "best_model.zip").is_file()
    deadline = time.monotonic() + 15
    while _alive(_descendants(os.getpid()) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(_descendants(os.getpid()) - before)
    assert not left, f"worker processes left behind: {_describe(left)}"


@pytest.mark.timeout(240)
def test_kill_9_then_resume_reaches_the_same_budget(tmp_path: Path) -> None:
    from stable_baselines3 import DQN

    total = 1024
    proc = subprocess.Popen(
        [
            *_train_argv(), "--scenario", "cologne1", "--algo", "dqn", "--timesteps", str(total),
            "--checkpoint-every", "64", "--eval-every", "1024", "--duration", "300", "--no-progress",
            "--workspace", str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        last = None
        while time.monotonic() < deadline and proc.poll() is None:
            runs = list((tmp_path / "runs").glob("cologne1__dqn__*"))
            last = latest_checkpoint(runs[0]) if runs else None
            if last is not None:
                break
            time.sleep(0.05)
        assert last is not None, "no checkpoint appeared"
        workers = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    run = runs[0]
    done = last[1]
    assert 0 < done < total
    assert not (run / "final_model.zip").exists()
    # Workers notice their parent's death and exit; libsumo dies with them (no SUMO process left).
    deadline = time.monotonic() + 20
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(workers), "worker processes outlived the killed trainer"

    result = _run_cli(["--resume", str(run), "--workspace", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    model = DQN.load(run / "final_model.zip", device="cpu")
    assert model.num_timesteps == total  # the budget, not budget + steps already done
    info = json.loads((run / "train.json").read_text())
    assert info["resumed_from"] >= done and info["num_timesteps"] == total
    assert len(list((tmp_path / "runs").iterdir())) == 1  # resumed in place


def _bad_config_line(tmp_path: Path, yaml_text: str) -> str:
    """Train with a config file holding ``yaml_text``: exit 2 and one line on stderr, returned."""
    bad = tmp_path / "train.yaml"
    bad.write_text(yaml_text)
    result = _run_cli(["--config", str(bad), "--workspace", str(tmp_path)])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.yaml" in lines[0], result.stderr
    return lines[0]


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    assert "algo" in _bad_config_line(tmp_path, "scenario: cologne1\nalgo: a2c\n")
    with pytest.raises(Exception, match="learning_rat"):
        TrainConfig(scenario="cologne1", learning_rat=0.1)  # type: ignore[call-arg]


def test_auto_observation_phases_when_shared_lanes_for_one_signal(tmp_path: Path) -> None:
    from roadtwin.agents.train import _env_options, env_spec
    from roadtwin.sim.resco import resco_env_kwargs

    def observed(scenario: str, **options: Any) -> str:
        config = TrainConfig(scenario=scenario, **options)
        kwargs = {**resco_env_kwargs(scenario), **_env_options(config, delta_time=10.0, yellow_time=3.0)}
        return str(env_spec(kwargs, tls_ids=None).kwargs["observation"])

    assert TrainConfig(scenario="cologne1").observation == "auto"
    assert observed("cologne3") == "phases"  # three signals share a policy
    assert observed("cologne1") == "lanes"  # one signal
    assert observed("cologne3", action_mode="timing") == "lanes"
    assert observed("cologne1", observation="phases") == "phases"
    with pytest.raises(Exception, match="phases"):
        TrainConfig(scenario="cologne1", action_mode="timing", observation="phases")
    line = _bad_config_line(tmp_path, "scenario: cologne1\naction_mode: timing\nobservation: phases\n")
    assert "observation" in line


def test_resume_of_a_folder_that_is_not_a_training_run(tmp_path: Path) -> None:
    (tmp_path / "not-a-run").mkdir()
    result = _run_cli(["--resume", str(tmp_path / "not-a-run")])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "training run folder" in lines[0], result.stderr
    with pytest.raises(ConfigError):
        train(None, resume=tmp_path / "missing")


def test_corrupt_checkpoint_is_one_line_error(tmp_path: Path) -> None:
    config = TrainConfig(scenario="cologne1", total_timesteps=64, n_steps=32, batch_size=32, **TINY)
    run = train(config, workspace=Workspace.at(tmp_path))
    (run / "final_model.zip").unlink()
    last = latest_checkpoint(run)
    assert last is not None
    last[0].write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="checkpoint"):
        train(None, resume=run)
    result = _run_cli(["--resume", str(run)])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and last[0].name in lines[0], result.stderr


def test_importing_agents_stays_light() -> None:
    code = (
        "import sys, roadtwin.agents, roadtwin.agents.train, roadtwin.agents.rl;"
        "heavy = [m for m in ('torch', 'stable_baselines3', 'supersuit', 'gymnasium') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("name", ["zone_ppo.yaml", "zone_ppo_imitate.yaml"])
def test_shipped_zone_config_is_valid_and_counts_whole_rollouts(name: str) -> None:
    """The README's zone training commands: ``agents/configs/zone_ppo*.yaml`` validate, and their
    budgets, checkpoints and evaluations fall on whole PPO rollouts of the zone's 88 signals, 30 morning
    peaks in all (demonstrations included)."""
    from roadtwin.config import read_yaml_mapping

    path = Path(__file__).resolve().parents[1] / "agents" / "configs" / name
    config = TrainConfig(**read_yaml_mapping(path))
    assert config.scenario == "zone" and config.algo == "ppo"
    if config.imitate_episodes:  # max-pressure's own bounds, as the demonstrations
        assert (config.max_green, config.max_red, config.observation) == (120, 600, "phases")
    else:  # as the README's first zone policies trained
        assert config.max_red == 120 and config.observation == "lanes"
    rollout = config.n_steps * 88
    for steps in (config.total_timesteps, config.checkpoint_every, config.eval_every):
        assert steps % rollout == 0
    peaks = config.total_timesteps / (720 * 88) + config.imitate_episodes
    assert 29 <= peaks <= 30  # ~30 morning peaks of 720 decisions
