"""A warm start for signal-control policies: episodes of max-pressure control, and a policy cloned from them.

An RL policy that starts from random weights spends most of RESCO's 100-episode budget learning what a
max-pressure controller already knows: serve the green with the most queued vehicles whose exits have
room. ``imitate_episodes`` in :class:`~roadtwin.agents.train.TrainConfig` therefore first runs that many
episodes of :class:`~roadtwin.agents.max_pressure.MaxPressure` (with the environment's decision interval,
yellow, min/max green and max red) and records, at each of its decisions, the observation the training
environment would have given (:class:`~roadtwin.sim.env.SignalObserver` on the same simulation), the
green it chose and the environment's reward. The policy is then trained to choose as max-pressure did
(behaviour cloning: the log-likelihood of its choices) and its value function to predict the discounted
return that followed (so that PPO's first updates do not start from a random critic), and RL continues
from there. The demonstrations count as training episodes (DemoLight, Xiong et al. 2019, warm-starts
signal control the same way).

Episodes are written one file each (``demonstrations/episode_{i}.npz``, atomically): a run killed while
recording continues with the next episode on ``--resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roadtwin._io import atomic_path
from roadtwin.agents.max_pressure import MaxPressure
from roadtwin.errors import ConfigError, InputError, SimulationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.env import SignalObserver
    from roadtwin.sim.signals import SignalLayout, SignalMeasures, SignalNetwork

__all__ = [
    "DEMO_SEED_OFFSET",
    "GRIDLOCK_PENDING",
    "Demonstrations",
    "clone_policy",
    "demonstration_seeds",
    "imitation_callback",
    "record_demonstrations",
]

#: A demonstration that ends with more vehicles than this waiting to enter the network gridlocked (the
#: benchmarks' rule) and is not imitated: max-pressure with a 5 s min green locks cologne3 in about one
#: episode in ten.
GRIDLOCK_PENDING = 10
#: Seed offset of the demonstration episodes (away from the training and evaluation environments' seeds).
DEMO_SEED_OFFSET = 200_000


@dataclass(frozen=True)
class Demonstrations:
    """Recorded decisions, one row per signal and decision.

    Attributes
    ----------
    obs
        Observations, zero-padded to the policy's length (SuperSuit's ``pad_observations_v0``).
    actions
        The green max-pressure asked for.
    returns
        The discounted environment reward that followed, per signal, to the end of the episode.
    dropped
        Episodes left out because max-pressure gridlocked in them (:data:`GRIDLOCK_PENDING`).
    """

    obs: np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    dropped: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.actions)


class _Recorder(MaxPressure):
    """Max-pressure that also writes down, at each decision, what the environment would have shown."""

    def __init__(
        self,
        *,
        tls_ids: Sequence[str],
        env: dict[str, Any],
        obs_pad: int,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.tls_ids = list(tls_ids)
        self.env = env
        self.obs_pad = int(obs_pad)
        self.observer: SignalObserver | None = None
        self.rows = np.zeros(0, dtype=np.intp)
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[np.ndarray] = []

    def _new_layout(
        self, network: SignalNetwork, tls: Sequence[str], *, neighbours: bool = False
    ) -> SignalLayout:
        # the environment's neighbours, observed alongside (max-pressure itself does not read them)
        return super()._new_layout(network, tls, neighbours=neighbours or bool(self.env.get("neighbours")))

    def start(self, session: SumoSession) -> None:
        from roadtwin.sim.env import SignalObserver
        from roadtwin.sim.signals import SignalMonitor

        super().start(session)
        lay = self.layout
        if lay is None:
            raise ConfigError(path=None, field="imitate_episodes", expected="a network with signals", got=0)
        missing = [t for t in self.tls_ids if t not in lay.tls_ids]
        if missing:
            raise ConfigError(
                path=None,
                field="tls_ids",
                expected="signals max-pressure controls (imitation needs a teacher for each)",
                got=missing,
            )
        self.rows = np.array([lay.index(t) for t in self.tls_ids], dtype=np.intp)
        env = self.env
        self.observer = SignalObserver(
            lay,
            n_choices=lay.n_greens,
            with_age=True,
            max_green=float(env["max_green"]),
            kind=env["observation"],
            max_red=env["max_red"],
        )
        if env["reward"] == "wait":  # the wait reward needs the vehicles' waiting times as well
            assert self.monitor is not None
            self.monitor = SignalMonitor(
                lay,
                waiting_time=True,
                outgoing_halting=True,
                lane_backlog=self.monitor.lane_backlog,
            )
            self.monitor.subscribe(session.conn)

    def _choose(self, m: SignalMeasures, now: float) -> np.ndarray:
        from roadtwin.sim.env import pad_observations

        requests = super()._choose(m, now)
        act, observer = self.actuator, self.observer
        assert act is not None and observer is not None
        rows = observer.observe(m, choice=act.green, age=act.age, red=act.red)
        self.obs.append(pad_observations([rows[r] for r in self.rows], self.obs_pad))
        self.actions.append(requests[self.rows].copy())
        self._record_reward(m)
        return requests

    def measure_reward(self, session: SumoSession) -> int:
        """Record the reward of the last decision, at the end of the episode (no decision follows);
        return the vehicles still waiting to be inserted then."""
        assert self.monitor is not None
        m = self.monitor.measure(session.conn)
        self._record_reward(m)
        return int(m.pending)

    def _record_reward(self, m: SignalMeasures) -> None:
        from roadtwin.sim.env import signal_rewards

        env = self.env
        reward = signal_rewards(m, reward=env["reward"], backlog_weight=float(env["backlog_weight"]))
        self.rewards.append(reward[self.rows])


def demonstration_seeds(seed: int, episodes: int) -> list[int]:
    """The environment seeds of a run's demonstration episodes: episode ``i`` runs the simulation that
    ``reset(seed=seed + DEMO_SEED_OFFSET + i)`` starts (:func:`~roadtwin.sim.env.episode_seed`)."""
    return [seed + DEMO_SEED_OFFSET + i for i in range(episodes)]


def _returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros_like(rewards)
    acc = np.zeros(rewards.shape[1:])
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out


def record_demonstrations(
    env_kwargs: dict[str, Any],
    *,
    tls_ids: Sequence[str],
    obs_pad: int,
    episodes: int,
    seed: int,
    gamma: float,
    folder: Path,
    on_episode: Callable[[int], None] | None = None,
) -> Demonstrations:
    """Run ``episodes`` episodes of max-pressure with the environment's timings and record them.

    Parameters
    ----------
    env_kwargs
        The training environment's keyword arguments (phase mode).
    tls_ids
        The policy's signals, in agent order.
    obs_pad
        The policy's observation length.
    episodes, seed
        How many episodes, and the run seed their SUMO seeds derive from (:func:`demonstration_seeds`).
    gamma
        Discount of the recorded returns.
    folder
        Where each episode is kept; episodes already there are read, not run again.
    on_episode
        Called with the episode's index when it is done (a progress bar).
    """
    from roadtwin.sim.backend import start
    from roadtwin.sim.env import TrafficSignalParallelEnv, episode_seed

    if env_kwargs.get("action_mode", "phase") != "phase":
        raise ConfigError(
            path=None,
            field="imitate_episodes",
            expected="0 in timing mode (max-pressure chooses greens, not timing plans)",
            got=episodes,
        )
    probe = TrafficSignalParallelEnv(**env_kwargs, tls_ids=list(tls_ids))
    probe.close()  # no simulation: it only builds the episodes' command lines
    begin, end = float(env_kwargs["begin"]), float(env_kwargs["end"])
    dt = float(env_kwargs["delta_time"])
    options = {
        "decision_interval_s": dt,
        **{k: float(env_kwargs[k]) for k in ("yellow_time", "all_red_time", "min_green", "max_green")},
    }
    if env_kwargs.get("max_red") is not None:
        options["max_red"] = float(env_kwargs["max_red"])
    folder.mkdir(parents=True, exist_ok=True)
    obs, actions, returns = [], [], []
    dropped: list[int] = []
    for i, env_seed in enumerate(demonstration_seeds(seed, episodes)):
        path = folder / f"episode_{i}.npz"
        if not path.is_file():
            recorder = _Recorder(tls_ids=tls_ids, env=env_kwargs, obs_pad=obs_pad, **options)
            cmd = probe.command(episode_seed(env_seed))
            session = start(cmd, backend=env_kwargs.get("backend", "libsumo"))
            try:
                # Decisions at begin, begin + dt, ... as the environment's reset and steps take them; the
                # measure at the end gives the last decision's reward.
                recorder.start(session)
                t = begin
                while t < end - 1e-9:
                    recorder.act(session)
                    t = min(t + dt, end)
                    session.step(t)
                pending = recorder.measure_reward(session)
            finally:
                recorder.close()
                session.close()
            # The reward of decision t is measured at decision t + 1 (as the environment returns it).
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    obs=np.asarray(recorder.obs),
                    actions=np.asarray(recorder.actions),
                    rewards=np.asarray(recorder.rewards[1:]),
                    pending=np.asarray(pending),
                )
        try:
            with np.load(path) as data:
                ep_obs, ep_act, ep_rew = data["obs"], data["actions"], data["rewards"]
                ep_pending = int(data["pending"])
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(
                path=path,
                field=None,
                expected="a demonstration episode (delete it to record it again)",
                got=exc,
            ) from None
        if on_episode is not None:
            on_episode(i)
        if ep_pending > GRIDLOCK_PENDING:
            dropped.append(i)
            continue
        obs.append(ep_obs.reshape(-1, ep_obs.shape[-1]))
        actions.append(ep_act.reshape(-1))
        returns.append(_returns(ep_rew, gamma).reshape(-1))
    if not obs:
        raise SimulationError(
            f"max-pressure gridlocked in every demonstration episode ({episodes}, more than "
            f"{GRIDLOCK_PENDING} vehicles left waiting to enter): nothing to imitate"
        )
    return Demonstrations(
        obs=np.concatenate(obs).astype(np.float32),
        actions=np.concatenate(actions).astype(np.int64),
        returns=np.concatenate(returns).astype(np.float32),
        dropped=tuple(dropped),
    )


def _descend(optimizer: Any, policy: Any, loss: Any) -> None:
    """One gradient step, the gradient clipped as PPO clips it (``max_grad_norm`` 0.5)."""
    import torch

    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
    optimizer.step()


def clone_policy(
    model: OnPolicyAlgorithm,
    demos: Demonstrations,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Train ``model``'s policy to choose as the demonstrations did and its value function to predict
    their returns; return the final accuracy (share of decisions the deterministic policy matches) and
    losses."""
    import torch
    import torch.nn.functional as F

    policy = model.policy
    policy.set_training_mode(True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    obs = torch.as_tensor(demos.obs)
    actions = torch.as_tensor(demos.actions)
    returns = torch.as_tensor(demos.returns)
    gen = torch.Generator().manual_seed(seed)
    n = len(demos)
    bc = vf = 0.0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        bc_sum = vf_sum = 0.0
        for lo in range(0, n, batch_size):
            idx = order[lo : lo + batch_size]
            values, log_prob, _ = policy.evaluate_actions(obs[idx], actions[idx])
            bc_loss = -log_prob.mean()
            vf_loss = F.mse_loss(values.flatten(), returns[idx])
            _descend(optimizer, policy, bc_loss + 0.5 * vf_loss)
            bc_sum += bc_loss.item() * len(idx)
            vf_sum += vf_loss.item() * len(idx)
        bc, vf = bc_sum / n, vf_sum / n
    policy.set_training_mode(False)
    with torch.no_grad():
        chosen = policy._predict(obs, deterministic=True)  # SB3's batched greedy action
    accuracy = float((chosen.reshape(-1) == actions).float().mean())
    return {"accuracy": accuracy, "bc_loss": bc, "value_loss": vf, "samples": float(n)}


def imitation_callback(
    demos: Demonstrations,
    *,
    coef: float,
    budget: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
) -> Any:
    """An SB3 callback that keeps the policy near the demonstrations while RL trains it: before each
    rollout, one pass of behaviour-cloning steps as many as PPO's minibatches per epoch, weighted
    ``coef`` at the start and falling linearly to 0 at ``budget`` steps (DAPG's decaying demonstration
    term, Rajeswaran et al. 2018). Without it PPO's first updates, on a critic that has seen only the
    teacher's returns, can turn a cloned policy into one that gridlocks cologne3.

    The weight scales the cloning steps' learning rate (``coef x learning_rate``), not their loss: Adam
    normalises a loss's scale away, so a weighted loss would pull as hard at the end as at the start."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    obs = torch.as_tensor(demos.obs)
    actions = torch.as_tensor(demos.actions)

    class KeepImitating(BaseCallback):
        def _on_training_start(self) -> None:
            self.gen = torch.Generator().manual_seed(seed)
            self.optimizer = torch.optim.Adam(self.model.policy.parameters(), lr=learning_rate)
            self.steps_per_rollout = int(getattr(self.model, "n_steps", 1)) * self.model.n_envs

        def _on_rollout_start(self) -> None:
            weight = coef * max(0.0, 1.0 - self.model.num_timesteps / budget)
            if weight <= 0:
                return
            policy = self.model.policy
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate * weight
            policy.set_training_mode(True)
            for _ in range(max(1, self.steps_per_rollout // batch_size)):
                idx = torch.randint(len(actions), (batch_size,), generator=self.gen)
                _, log_prob, _ = policy.evaluate_actions(obs[idx], actions[idx])
                _descend(self.optimizer, policy, -log_prob.mean())
            policy.set_training_mode(False)
            self.logger.record("imitation/weight", weight)

        def _on_step(self) -> bool:
            return True

    return KeepImitating()
