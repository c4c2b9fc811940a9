"""Max-pressure demonstrations and behaviour cloning, on five minutes of RESCO's cologne3 (3 signals)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from roadtwin.agents.imitation import DEMO_SEED_OFFSET, clone_policy, record_demonstrations
from roadtwin.agents.train import TrainConfig, _env_options, env_spec
from roadtwin.sim import resco

try:
    resco.resco_dir()
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip("sumo-rl (the bench extra) is not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)


def _spec(scenario: str = "cologne3", **options: Any) -> Any:
    config = TrainConfig(scenario=scenario, **options)
    kwargs = {**resco.resco_env_kwargs(scenario), **_env_options(config, delta_time=10.0, yellow_time=3.0)}
    kwargs["end"] = kwargs["begin"] + 300.0
    return env_spec(kwargs, tls_ids=None)


@pytest.mark.parametrize(
    ("scenario", "options"),
    [("cologne3", {}), ("ingolstadt7", {"neighbours": True, "observation": "lanes", "reward": "pressure"})],
)
def test_demonstrations_are_what_the_environment_shows(
    tmp_path: Path, scenario: str, options: dict[str, Any]
) -> None:
    """Replaying max-pressure's recorded choices in the training environment, with the same seed, gives
    back the recorded observations and rewards, decision by decision (also with neighbours observed)."""
    from roadtwin.sim.env import TrafficSignalParallelEnv

    spec = _spec(scenario, max_green=120, max_red=600, **options)
    demos = record_demonstrations(
        spec.kwargs, tls_ids=spec.tls_ids, obs_pad=spec.obs_pad, episodes=1, seed=0, gamma=1.0,
        folder=tmp_path / "demos",
    )  # fmt: skip
    n = len(spec.tls_ids)
    assert len(demos) == 30 * n  # 300 s, a decision every 10 s, per signal
    obs = demos.obs.reshape(30, n, -1)
    actions = demos.actions.reshape(30, n)
    assert len(np.unique(actions)) > 1  # max-pressure switches

    env = TrafficSignalParallelEnv(**spec.kwargs, tls_ids=list(spec.tls_ids))
    try:
        seen, _ = env.reset(seed=DEMO_SEED_OFFSET)
        rewards = []
        for t in range(30):
            for i, a in enumerate(spec.tls_ids):  # per-lane observations differ in length per signal
                got = seen[a]
                np.testing.assert_allclose(obs[t, i, : len(got)], got, atol=1e-6, err_msg=f"{t}: {a}")
                assert not obs[t, i, len(got) :].any()  # nothing recorded beyond what the env shows
            seen, reward, _, _, _ = env.step(dict(zip(spec.tls_ids, actions[t].tolist(), strict=True)))
            rewards.append([reward[a] for a in spec.tls_ids])
    finally:
        env.close()
    # gamma 1: the first return is the episode's reward sum, per signal
    np.testing.assert_allclose(demos.returns.reshape(30, n)[0], np.sum(rewards, axis=0), rtol=1e-5)
    # the episode is kept: reading it back runs nothing
    again = record_demonstrations(
        spec.kwargs, tls_ids=spec.tls_ids, obs_pad=spec.obs_pad, episodes=1, seed=0, gamma=1.0,
        folder=tmp_path / "demos",
    )  # fmt: skip
    np.testing.assert_array_equal(again.actions, demos.actions)


def test_cloned_policy_chooses_as_max_pressure(tmp_path: Path) -> None:
    import gymnasium
    from gymnasium import spaces
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    spec = _spec(max_green=120, max_red=600)
    demos = record_demonstrations(
        spec.kwargs, tls_ids=spec.tls_ids, obs_pad=spec.obs_pad, episodes=2, seed=0, gamma=0.99,
        folder=tmp_path / "demos",
    )  # fmt: skip

    class _Spaces(gymnasium.Env):  # type: ignore[type-arg]  # the policy needs the spaces only
        observation_space = spaces.Box(0.0, 1.0, shape=(spec.obs_pad,), dtype=np.float32)
        action_space = spaces.Discrete(spec.act_pad)

    model = PPO("MlpPolicy", DummyVecEnv([_Spaces]), device="cpu", seed=0)
    before = clone_policy(model, demos, epochs=1, batch_size=64, learning_rate=1e-9)["accuracy"]
    fit = clone_policy(model, demos, epochs=30, batch_size=64)
    assert fit["accuracy"] > max(0.7, before + 0.3), (before, fit)


def test_imitation_needs_ppo_in_phase_mode(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="imitate_episodes"):
        TrainConfig(scenario="cologne3", algo="dqn", imitate_episodes=2)
    with pytest.raises(Exception, match="imitate_episodes"):
        TrainConfig(scenario="cologne3", action_mode="timing", imitate_episodes=2)
    assert TrainConfig(scenario="cologne3", algo="dqn").imitate_episodes == 0


def test_training_starts_from_the_cloned_policy_and_resumes_after_it(tmp_path: Path) -> None:
    import json
    import shutil

    from stable_baselines3 import PPO

    from roadtwin.agents.train import train
    from roadtwin.workspace import Workspace

    config = TrainConfig(
        scenario="cologne3", imitate_episodes=2, max_green=120, max_red=600, total_timesteps=96, n_steps=32,
        batch_size=32, duration_s=300, checkpoint_every=96, eval_every=96, progress=True,
    )  # fmt: skip
    run = train(config, workspace=Workspace.at(tmp_path))
    fit = json.loads((run / "imitation.json").read_text())
    assert fit["episodes"] == 2 and fit["samples"] == 2 * 30 * 3 and fit["accuracy"] > 0.6
    assert sorted(p.name for p in (run / "demonstrations").iterdir()) == ["episode_0.npz", "episode_1.npz"]
    # the step-0 checkpoint is the cloned policy: it chooses as max-pressure did
    cloned = PPO.load(run / "checkpoints" / "model_0_steps.zip", device="cpu")
    with np.load(run / "demonstrations" / "episode_0.npz") as data:
        obs, actions = data["obs"].reshape(-1, data["obs"].shape[-1]), data["actions"].reshape(-1)
    chosen, _ = cloned.predict(obs, deterministic=True)
    assert np.mean(chosen == actions) > 0.6
    assert json.loads((run / "train.json").read_text())["num_timesteps"] == 96

    # killed after cloning: the resumed run starts from the step-0 checkpoint and records nothing again
    for p in (run / "checkpoints").glob("model_*_steps.zip"):
        if p.name != "model_0_steps.zip":
            p.unlink()
    (run / "train.json").unlink()
    shutil.rmtree(run / "demonstrations")
    train(None, workspace=Workspace.at(tmp_path), resume=run, progress=False)
    assert not (run / "demonstrations").exists()
    assert json.loads((run / "train.json").read_text())["num_timesteps"] == 96


def test_imitation_kept_during_rl_keeps_the_teachers_choices(tmp_path: Path) -> None:
    import json

    from stable_baselines3 import PPO

    from roadtwin.agents.train import train
    from roadtwin.workspace import Workspace

    config = TrainConfig(
        scenario="cologne3", imitate_episodes=1, imitate_coef=1.0, max_green=120, max_red=600,
        total_timesteps=192, n_steps=32, batch_size=32, duration_s=300, checkpoint_every=96, eval_every=96,
        progress=False,
    )  # fmt: skip
    run = train(config, workspace=Workspace.at(tmp_path))
    assert json.loads((run / "train.json").read_text())["num_timesteps"] == 192
    final = PPO.load(run / "final_model.zip", device="cpu")
    with np.load(run / "demonstrations" / "episode_0.npz") as data:
        obs, actions = data["obs"].reshape(-1, data["obs"].shape[-1]), data["actions"].reshape(-1)
    chosen, _ = final.predict(obs, deterministic=True)
    assert np.mean(chosen == actions) > 0.6


def test_imitation_weight_falls_to_nothing(tmp_path: Path) -> None:
    """The callback's pull on the policy follows its decaying weight: Adam would cancel a weight put on
    the loss, so near the end of the budget the cloning steps must barely move the policy."""
    import gymnasium
    import torch
    from gymnasium import spaces
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from roadtwin.agents.imitation import Demonstrations, imitation_callback

    class _Spaces(gymnasium.Env):  # type: ignore[type-arg]
        observation_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        action_space = spaces.Discrete(3)

    rng = np.random.default_rng(0)
    obs = rng.random((256, 4), dtype=np.float32)
    demos = Demonstrations(obs=obs, actions=obs[:, :3].argmax(1), returns=np.zeros(256, dtype=np.float32))

    def pull(at: int) -> float:
        from stable_baselines3.common.logger import configure

        model = PPO("MlpPolicy", DummyVecEnv([_Spaces]), n_steps=64, device="cpu", seed=0)
        model.set_logger(configure(str(tmp_path / f"log{at}"), []))  # None: a folder in /tmp
        callback = imitation_callback(demos, coef=1.0, budget=1000, batch_size=16, learning_rate=3e-4)
        callback.init_callback(model)
        callback.on_training_start({}, {})
        before = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
        model.num_timesteps = at
        callback.on_rollout_start()
        after = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach()
        return float((after - before).norm())

    start, late, end = pull(0), pull(990), pull(1000)
    assert start > 0 and end == 0.0
    assert late < 0.05 * start  # weight 0.01: a small fraction of the first pull
