"""Trained policies as signal controllers (``rl:PATH``) in real runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("supersuit")

from roadtwin.agents.base import make_controller
from roadtwin.agents.rl import RLController, find_policy
from roadtwin.agents.scenarios import resolve_scenario
from roadtwin.agents.train import TrainConfig, train
from roadtwin.errors import ConfigError
from roadtwin.sim import resco
from roadtwin.sim.run import run_inputs
from roadtwin.workspace import Workspace

try:
    resco.resco_dir()
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip("sumo-rl (the bench extra) is not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)

TINY = {"duration_s": 300, "progress": False, "checkpoint_every": 64, "eval_every": 64}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PPO policy on cologne1 (one signal: lanes observed), one seeing phase-level observations, and
    a DQN policy shared by cologne3's three signals (phases observed)."""
    ws = Workspace.at(tmp_path_factory.mktemp("rl-train"))
    single = train(
        TrainConfig(scenario="cologne1", total_timesteps=64, n_steps=32, batch_size=32, **TINY), workspace=ws
    )
    shared = train(
        TrainConfig(scenario="cologne3", algo="dqn", total_timesteps=96, learning_starts=24, **TINY),
        workspace=ws,
    )
    phases = train(
        TrainConfig(
            scenario="cologne1", observation="phases", total_timesteps=64, n_steps=32, batch_size=32, **TINY
        ),
        workspace=ws,
    )
    return {"cologne1": single, "cologne3": shared, "cologne1-phases": phases}


def _run(controller: RLController, scenario: str, workspace: Path, *, seed: int = 1, duration_s: float = 600):
    sc = resolve_scenario(scenario, workspace=Workspace.at(workspace), duration_s=duration_s)
    return run_inputs(
        lambda folder: sc.make_inputs(folder, seed),
        name=scenario,
        seed=seed,
        config=sc.config,
        workspace=Workspace.at(workspace),
        controller=controller,
        progress=False,
        report=False,
    )


@pytest.mark.parametrize("scenario", ["cologne1", "cologne3"])
def test_policy_drives_a_complete_run(trained: dict[str, Path], tmp_path: Path, scenario: str) -> None:
    controller = make_controller(f"rl:{trained[scenario]}")
    assert isinstance(controller, RLController)
    result = _run(controller, scenario, tmp_path)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["vehicles_inserted"] > 0
    assert "controller: rl" in (result.run_dir / "config.yaml").read_text()
    # one decision every 10 s from the window's start, every signal at once
    times = [t for t, _, _ in controller.decisions]
    assert times == [25200.0 + 10 * k for k in range(60)]
    n_signals = len(controller.tls_ids)
    assert all(
        obs.shape == (n_signals, controller.policy.spec["obs_pad"]) for _, obs, _ in controller.decisions
    )
    actions = np.stack([a for _, _, a in controller.decisions])
    assert np.all(actions < np.asarray(controller.policy.spec["n_actions"]))


@pytest.mark.parametrize("policy", ["cologne1", "cologne1-phases"])
def test_controller_sees_what_the_environment_saw(
    trained: dict[str, Path], tmp_path: Path, policy: str
) -> None:
    """Same SUMO seed, same policy: the run's decisions replay the environment's episode exactly."""
    from roadtwin.sim.env import TrafficSignalEnv

    controller = RLController(source=trained[policy])
    _run(controller, "cologne1", tmp_path, seed=7, duration_s=300)

    kwargs = resco.resco_env_kwargs("cologne1")
    kwargs["end"] = kwargs["begin"] + 300
    kwargs["max_red"] = controller.policy.spec["max_red"]  # as trained (agents train sets 120 s)
    assert kwargs["max_red"] == 120.0
    kwargs["observation"] = controller.policy.spec["observation"]
    assert kwargs["observation"] == ("phases" if policy.endswith("phases") else "lanes")
    env = TrafficSignalEnv(**kwargs)
    try:
        obs, _ = env._core.start(7)  # the SUMO seed the run used
        seen = []
        done = False
        while not done:
            action, _ = controller.model.predict(obs[0], deterministic=True)
            seen.append((obs[0], int(action)))
            obs, _, done, _ = env._core.step(np.array([int(action)]))
    finally:
        env.close()
    assert len(seen) == len(controller.decisions) == 30
    for (env_obs, env_action), (_, run_obs, run_actions) in zip(seen, controller.decisions, strict=True):
        np.testing.assert_allclose(run_obs[0], env_obs, atol=1e-6)
        assert run_actions[0] == env_action


def test_model_zip_inside_a_run_is_a_source(trained: dict[str, Path]) -> None:
    policy = find_policy(trained["cologne1"] / "final_model.zip")
    assert policy.run_dir == trained["cologne1"]
    assert find_policy(trained["cologne1"]).model_path.name == "best_model.zip"


def test_bad_sources_are_config_errors(tmp_path: Path, trained: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="training run folder"):
        make_controller(f"rl:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="training run folder"):
        make_controller(f"rl:{tmp_path / 'empty'}")
    # a cologne1 policy cannot drive cologne3's signals
    controller = make_controller(f"rl:{trained['cologne1']}")
    with pytest.raises(ConfigError, match="tls_ids"):
        _run(controller, "cologne3", tmp_path, duration_s=60)


def test_the_shipped_zone_policy_resolves_by_name() -> None:
    """``rl:zone`` is the policy in ``agents/policies/zone`` (the demo's best controller): a training run
    folder for the zone's 88 signals, under 5 MB, that loads without SUMO."""
    from roadtwin.agents.rl import SHIPPED_POLICIES, find_policy

    found = find_policy("zone")
    assert found.run_dir == SHIPPED_POLICIES["zone"]
    assert found.model_path.name == "best_model.zip" and found.model_path.stat().st_size < 5_000_000
    assert len(found.spec["tls_ids"]) == 88 and found.spec["shared"] is True


def test_check_controller_finds_errors_without_loading_a_policy(tmp_path: Path) -> None:
    from roadtwin.agents import check_controller

    with pytest.raises(ConfigError, match="training run folder"):
        check_controller(f"rl:{tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="one of"):
        check_controller("no-such-controller")
    with pytest.raises(ConfigError, match="spillback_occupancy"):
        check_controller("max-pressure", spillback_occupancy=2.0)
    # The shipped policy checks out, and neither torch nor stable-baselines3 is loaded by it (a process
    # that forks its runs afterwards must not have run torch).
    code = (
        "import sys; from roadtwin.agents import check_controller; check_controller('rl:zone'); "
        "print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr
