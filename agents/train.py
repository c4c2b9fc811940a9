"""Training of signal-control policies with stable-baselines3: ``roadtwin agents train``.

One signal trains on the Gymnasium environment (``roadtwin/TrafficSignal-v0``); several share one policy
through SuperSuit: the PettingZoo parallel environment with observations and action spaces padded to the
largest signal's, each signal one entry of a vector environment. Environments run in ``n_envs`` worker
processes (libsumo runs one simulation per process); the evaluation environment always runs in a process
of its own.

A training run folder ``runs/{scenario}__{algo}__{seed}__{timestamp}/`` holds:

- ``config.yaml``: the validated :class:`TrainConfig` (``train``), the environment (``env``) and what a
  controller needs to drive signals with the policy (``policy``: signals, padding, timings);
- ``inputs/``: the scenario's SUMO inputs, prepared once (each episode draws a new SUMO seed);
- ``checkpoints/``: ``model_{steps}_steps.zip`` every ``checkpoint_every`` steps (and, for DQN, the
  replay buffer of the latest one);
- ``tb/``: TensorBoard logs (episode rewards, losses, evaluation rewards);
- ``best/best_model.zip`` and ``best/best.json``: the best deterministic evaluation so far (every
  evaluation replays the same ``eval_episodes`` SUMO seeds, so evaluations compare policies);
- ``final_model.zip`` and ``train.json`` (steps, wall time, steps per second) when the budget is spent.

With ``task="routing"`` the environment is :class:`~roadtwin.agents.routing_rl.RoutingEnv` (guidance
levels at the zone's diversion points, PPO only: its actions are ``MultiDiscrete``) with the same run
folder, checkpoints, evaluation and resume; ``config.yaml``'s ``policy`` section then holds what
``rl-routing`` needs (``task: routing``, the diversion points, ``decision_s``, ``penetration``, the
guidance options, the scenario).

Every file is written under a temporary name and renamed when whole, so a run killed at any moment
(even ``kill -9``) continues with ``resume=RUN_DIR`` from its last checkpoint to the same total budget.

Steps are counted as SB3 counts them: one per signal decision (a shared policy with 3 signals makes 3
steps per environment step). PPO collects whole rollouts (``n_steps`` x environments) and DQN
``train_freq`` x environments steps at a time, so the budget rounds up to those; checkpoints fall on the
same boundaries, which makes a resumed run end on the same step count as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from pydantic import Field, ValidationError, model_validator

from roadtwin._io import atomic_path, write_json, write_yaml
from roadtwin.config import StrictModel, read_yaml_mapping, validation_error
from roadtwin.errors import ConfigError, InputError, RoadTwinError
from roadtwin.workspace import DEFAULT_WORKSPACE, Workspace

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

    from roadtwin.agents.imitation import Demonstrations

__all__ = [
    "ALGOS",
    "TASKS",
    "EnvSpec",
    "TrainConfig",
    "TrainOptions",
    "env_spec",
    "latest_checkpoint",
    "load_run_config",
    "routing_env_spec",
    "train",
    "train_command",
]

Algo = Literal["ppo", "dqn"]
ALGOS: tuple[Algo, ...] = ("ppo", "dqn")
Task = Literal["signals", "routing"]
TASKS: tuple[Task, ...] = ("signals", "routing")

CHECKPOINT_RE = re.compile(r"^model_(\d+)_steps\.zip$")
#: Seed offset of the evaluation environment (kept away from the training environments' seeds).
EVAL_SEED_OFFSET = 100_000


class TrainConfig(StrictModel):
    """A training run's settings (``roadtwin agents train``; every field settable in ``--config`` YAML)."""

    scenario: Annotated[str, Field(min_length=1)]
    """RESCO name (``cologne1`` ...), ``zone``, a built-in scenario name or a scenario YAML path."""
    task: Task = "signals"
    """``signals`` (signal control) or ``routing`` (guidance levels at diversion points, PPO only)."""
    algo: Algo = "ppo"
    """``ppo`` or ``dqn`` (stable-baselines3)."""
    total_timesteps: Annotated[int, Field(gt=0)] = 100_000
    """Training budget in agent steps (one per signal decision)."""
    n_envs: Annotated[int, Field(ge=1, le=64)] = 1
    """Environments, each in its own process when more than one."""
    checkpoint_every: Annotated[int, Field(gt=0)] = 10_000
    """Steps between checkpoints (rounded up to whole rollouts)."""
    eval_every: Annotated[int, Field(gt=0)] = 10_000
    """Steps between evaluations of the deterministic policy (rounded up to whole rollouts)."""
    eval_episodes: Annotated[int, Field(ge=1)] = 1
    """Episodes per evaluation. Every evaluation replays the same SUMO seeds, so the best model is chosen
    on the policies' merit, not on which evaluation drew the easiest episode."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Seed of the networks' initialisation and of the environments' SUMO seeds."""
    duration_s: Annotated[float | None, Field(gt=0)] = None
    """Train on the first seconds of the scenario's window only (default: the whole window)."""

    # environment
    tls_ids: list[str] | None = None
    """Signals to control; default every signal with two or more greens (one shares a policy if several)."""
    delta_time: Annotated[float | None, Field(gt=0)] = None
    """Seconds between decisions (default: the scenario's, RESCO's 10 s)."""
    yellow_time: Annotated[float | None, Field(ge=0)] = None
    """Yellow time (default: the scenario's, RESCO's 3 s)."""
    all_red_time: Annotated[float, Field(ge=0)] = 0.0
    min_green: Annotated[float, Field(ge=0)] = 5.0
    max_green: Annotated[float, Field(gt=0)] = 60.0
    max_red: Annotated[float | None, Field(gt=0)] = 120.0
    """Phase mode: the longest a green may go unserved (s), so that no policy starves an approach and
    blocks an entry behind it; ``null`` for no bound."""
    action_mode: Literal["phase", "timing"] = "phase"
    cycle_time: Annotated[float, Field(gt=0)] = 90.0
    reward: Literal["queue", "pressure", "delay", "wait"] = "queue"
    backlog_weight: Annotated[float, Field(ge=0)] = 1.0
    neighbours: bool = False
    observation: Literal["auto", "lanes", "phases"] = "auto"
    """``phases``: per green, one slot per action, read alike by every signal of a shared policy (phase
    mode only); ``lanes``: per incoming lane. ``auto``: phases for a shared policy in phase mode, lanes
    for one signal (RESCO, PPO, 100 episodes: cologne8 24.8 s with phases, 34.1 s with lanes; cologne1
    55.4 s with phases, 30.7 s with lanes)."""
    backend: Literal["libsumo", "traci"] = "libsumo"

    # routing environment (task routing; roadtwin.agents.routing_rl.RoutingEnv)
    diversion_points: Annotated[int, Field(ge=1)] = 8
    """Routing: how many diversion points the agent sets a guidance level for."""
    decision_s: Annotated[float, Field(gt=0)] = 120.0
    """Routing: seconds between two decisions (a multiple of the guidance's 10 s tick)."""
    penetration: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Routing: share of connected vehicles in training."""
    reward_scale: Annotated[float, Field(gt=0)] = 500.0
    """Routing: the reward is minus the mean vehicles in the network (or waiting to enter) / this."""
    guidance: dict[str, Any] = Field(default_factory=dict)
    """Routing: options of the forecast guidance underneath (``update_s``, ``min_gain`` ...)."""

    # learning
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed to the SB3 policy (e.g. ``{net_arch: [64, 64]}``)."""
    learning_rate: Annotated[float | None, Field(gt=0)] = None
    """Default 3e-4 (PPO) or 1e-3 (DQN)."""
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.99
    """Discount per decision (0.9 gave cologne8 23.6 s against 24.8 s, but collapsed on ingolstadt1)."""
    batch_size: Annotated[int, Field(ge=1)] = 64
    n_steps: Annotated[int, Field(ge=1)] = 256
    """PPO: steps per environment per rollout."""
    n_epochs: Annotated[int, Field(ge=1)] = 10
    """PPO: optimisation epochs per rollout."""
    ent_coef: Annotated[float, Field(ge=0)] = 0.01
    """PPO: entropy bonus."""
    buffer_size: Annotated[int, Field(ge=1)] = 50_000
    """DQN: replay buffer size."""
    learning_starts: Annotated[int, Field(ge=0)] = 500
    """DQN: steps collected before learning starts."""
    train_freq: Annotated[int, Field(ge=1)] = 4
    """DQN: steps per environment between updates."""
    target_update_interval: Annotated[int, Field(ge=1)] = 500
    exploration_fraction: Annotated[float, Field(gt=0, le=1)] = 0.2
    exploration_final_eps: Annotated[float, Field(ge=0, le=1)] = 0.02
    algo_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any other keyword argument of the SB3 algorithm (wins over the fields above)."""
    imitate_episodes: Annotated[int, Field(ge=0)] = 0
    """Episodes of max-pressure control (with this environment's timings) that the policy imitates before
    RL starts (:mod:`roadtwin.agents.imitation`; PPO, phase mode). They are training episodes on top of
    ``total_timesteps``."""
    imitate_epochs: Annotated[int, Field(ge=1)] = 20
    """Passes over the demonstrations when cloning them."""
    imitate_coef: Annotated[float, Field(ge=0)] = 0.0
    """Keep imitating while RL trains: before each rollout, behaviour-cloning steps with a learning rate
    of this times the RL one at the start, falling linearly to 0 at the end of the budget (0: clone
    once, then RL alone)."""
    torch_threads: Annotated[int, Field(ge=1)] = 1
    """Torch threads in the learner (the environments use the other cores)."""
    progress: bool = True
    """Show SB3's progress bar."""

    @model_validator(mode="after")
    def _timing(self) -> TrainConfig:
        if self.max_green <= self.min_green:
            raise ValueError("max_green greater than min_green")
        if self.action_mode == "timing" and self.observation == "phases":
            raise ValueError('observation "phases" needs action_mode "phase" (timing mode observes "lanes")')
        if self.imitate_episodes and (
            self.algo != "ppo" or self.action_mode != "phase" or self.task != "signals"
        ):
            raise ValueError("imitate_episodes needs algo ppo, action_mode phase and task signals (or 0)")
        return self


class TrainOptions(TrainConfig):
    """The options of ``roadtwin agents train``: a :class:`TrainConfig` plus where to write and resume."""

    workspace: Path = DEFAULT_WORKSPACE
    resume: Path | None = None


# --- environments ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvSpec:
    """How to build a training run's environments (picklable: it travels to worker processes).

    Attributes
    ----------
    kwargs
        Keyword arguments of the environment (files, window, timings, reward), without seed.
    tls_ids
        The controlled signals, in agent order.
    shared
        Several signals sharing one policy (PettingZoo + SuperSuit) rather than one (Gymnasium).
    obs_sizes, n_actions
        Per signal, the observation length and the number of actions (routing: one observation and
        one entry per diversion point, each of 3 levels).
    task
        ``"signals"`` or ``"routing"`` (:class:`~roadtwin.agents.routing_rl.RoutingEnv`, no signals).
    """

    kwargs: dict[str, Any]
    tls_ids: tuple[str, ...]
    shared: bool
    obs_sizes: tuple[int, ...]
    n_actions: tuple[int, ...]
    task: Task = "signals"

    @property
    def obs_pad(self) -> int:
        """Observation length the policy sees (the largest signal's)."""
        return max(self.obs_sizes)

    @property
    def act_pad(self) -> int:
        """Actions the policy chooses from (the largest signal's; extra ones mean action 0)."""
        return max(self.n_actions)


def _env_options(config: TrainConfig, *, delta_time: float, yellow_time: float) -> dict[str, Any]:
    return {
        "delta_time": config.delta_time if config.delta_time is not None else delta_time,
        "yellow_time": config.yellow_time if config.yellow_time is not None else yellow_time,
        "all_red_time": config.all_red_time,
        "min_green": config.min_green,
        "max_green": config.max_green,
        "max_red": config.max_red,
        "action_mode": config.action_mode,
        "cycle_time": config.cycle_time,
        "reward": config.reward,
        "backlog_weight": config.backlog_weight,
        "neighbours": config.neighbours,
        "observation": config.observation,
        "backend": config.backend,
        "time_to_teleport": -1.0,
    }


def env_spec(kwargs: dict[str, Any], *, tls_ids: list[str] | None) -> EnvSpec:
    """Probe the network (no episode) and decide between one signal and a shared policy; an ``auto``
    observation becomes ``phases`` for a shared policy in phase mode, ``lanes`` otherwise (the returned
    ``kwargs`` hold the choice)."""
    from roadtwin.sim.env import TrafficSignalParallelEnv

    auto = kwargs.get("observation") == "auto"
    if auto:
        kwargs = {**kwargs, "observation": "lanes"}
    probe = TrafficSignalParallelEnv(**kwargs, tls_ids=tls_ids)
    try:
        agents = tuple(probe.possible_agents)
        if auto and len(agents) > 1 and kwargs.get("action_mode", "phase") == "phase":
            probe.close()
            kwargs = {**kwargs, "observation": "phases"}
            probe = TrafficSignalParallelEnv(**kwargs, tls_ids=tls_ids)
        obs = tuple(int(probe.observation_spaces[a].shape[0]) for a in agents)  # type: ignore[index]
        acts = tuple(int(probe.action_spaces[a].n) for a in agents)  # type: ignore[attr-defined]
    finally:
        probe.close()
    return EnvSpec(kwargs=kwargs, tls_ids=agents, shared=len(agents) > 1, obs_sizes=obs, n_actions=acts)


def routing_env_spec(kwargs: dict[str, Any]) -> EnvSpec:
    """Probe a routing environment (no episode): its diversion points and spaces."""
    from roadtwin.agents.routing_rl import RoutingEnv

    probe = RoutingEnv(**kwargs)
    try:
        points = tuple(probe.points)
        obs = int(probe.observation_space.shape[0])  # type: ignore[index]
    finally:
        probe.close()
    return EnvSpec(
        kwargs={**kwargs, "points": list(points)},
        tls_ids=(),
        shared=False,
        obs_sizes=(obs,),
        n_actions=tuple(3 for _ in points),
        task="routing",
    )


def _routing_env(spec: EnvSpec, seed: int) -> Any:
    from roadtwin.agents.routing_rl import RoutingEnv

    return RoutingEnv(**spec.kwargs, seed=seed)


def _single_env(spec: EnvSpec, seed: int) -> Any:
    from roadtwin.sim.env import TrafficSignalEnv

    return TrafficSignalEnv(**spec.kwargs, tls_id=spec.tls_ids[0], seed=seed)


def _markov_env(spec: EnvSpec, seed: int) -> Any:
    import supersuit as ss

    from roadtwin.sim.env import TrafficSignalParallelEnv

    env = TrafficSignalParallelEnv(**spec.kwargs, tls_ids=list(spec.tls_ids), seed=seed)
    env = ss.pad_action_space_v0(ss.pad_observations_v0(env))
    return ss.pettingzoo_env_to_vec_env_v1(env)


def make_vec_env(spec: EnvSpec, *, n_envs: int, seed: int, subprocess: bool, replay: bool = False) -> VecEnv:
    """``n_envs`` environments (each signal one entry when shared), seeded ``seed``, ``seed + 1`` ...

    With ``replay`` every ``reset()`` restarts the same SUMO seeds (:func:`_replaying`): the evaluation
    environment, so that every evaluation replays the same episodes.

    With ``subprocess`` every environment runs in a worker process of its own (libsumo: one simulation
    per process); otherwise they run in this process (then ``n_envs`` must be 1 with libsumo).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    factory = _routing_env if spec.task == "routing" else _single_env if not spec.shared else _markov_env
    fns = [partial(factory, spec, seed + i) for i in range(n_envs)]
    venv: Any
    if not spec.shared:
        # fork, like SuperSuit's pool: workers need no importable __main__ (scripts, notebooks) and
        # start fast; they never touch torch, so the learner's threads do not matter to them.
        venv = SubprocVecEnv(fns, start_method="fork") if subprocess else DummyVecEnv(fns)
    else:
        from gymnasium import spaces
        from supersuit.vector import ConcatVecEnv, ProcConcatVec
        from supersuit.vector.constructors import call_wrap
        from supersuit.vector.sb3_vector_wrapper import SB3VecEnvWrapper

        # SuperSuit's concat_vec_envs_v1 copies one env object into every slot, so every copy would
        # replay the same SUMO seeds; the same machinery with one factory per slot seeds each apart.
        obs_space = spaces.Box(0.0, 1.0, shape=(spec.obs_pad,), dtype="float32")
        act_space = spaces.Discrete(spec.act_pad)
        if subprocess:
            vec: Any = ProcConcatVec(
                [call_wrap(ConcatVecEnv, [fn]) for fn in fns],
                obs_space,
                act_space,
                n_envs * len(spec.tls_ids),
                {"render_modes": []},
            )
        else:
            vec = ConcatVecEnv(fns, obs_space, act_space)
        vec.render_mode = None  # SuperSuit's SB3 wrapper reads it (GOTCHAS.md)

        class _Seedable(SB3VecEnvWrapper):  # type: ignore[misc]
            """SuperSuit's SB3 wrapper, with SB3's ``seed()``: the next reset passes the seed down."""

            _next_seed: int | None = None

            def seed(self, seed: int | None = None) -> list[int | None]:
                self._next_seed = seed
                return [None if seed is None else seed + i for i in range(self.num_envs)]

            def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
                seed, self._next_seed = (self._next_seed if seed is None else seed), None
                obs, self.reset_infos = self.venv.reset(seed=seed, options=options)
                return obs

        venv = _Seedable(vec)
    with warnings.catch_warnings():
        # SuperSuit's process pool answers no get_attr("render_mode"); SB3 then assumes None, as meant.
        warnings.filterwarnings("ignore", message="The `render_mode` attribute is not defined")
        return VecMonitor(_replaying(venv, seed=seed) if replay else venv)


def _replaying(venv: VecEnv, *, seed: int) -> VecEnv:
    """``venv`` restarting the same SUMO seeds at every ``reset()``: the evaluation callback resets it at
    the start of each evaluation, so every evaluation replays the same episodes (common random numbers)
    and the best model is chosen on the policies, not on which evaluation drew the easiest episode."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class Replaying(VecEnvWrapper):  # type: ignore[misc]
        def reset(self) -> Any:
            self.venv.seed(seed)
            return self.venv.reset()

        def step_wait(self) -> Any:
            return self.venv.step_wait()

    return Replaying(venv)


# --- scenario -> environment kwargs ----------------------------------------------------------------------


def _rel(path: Path, run_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def _abs(path: str, run_dir: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else run_dir / p


def _prepare_env(config: TrainConfig, *, run_dir: Path, workspace: Workspace) -> tuple[str, dict[str, Any]]:
    """Resolve the scenario, write its inputs into ``run_dir/inputs`` once; return (name, env kwargs)."""
    from roadtwin.agents.scenarios import resolve_scenario

    resolved = resolve_scenario(config.scenario, workspace=workspace, duration_s=config.duration_s)
    inputs = resolved.make_inputs(run_dir / "inputs", config.seed)
    kwargs: dict[str, Any] = {
        "net_file": inputs.net_file,
        "route_files": list(inputs.route_files),
        "additional_files": list(inputs.additional_files),
        "begin": inputs.begin,
        "end": inputs.end,
        "sumo_args": list(inputs.extra_args),
    }
    if config.task == "routing":
        kwargs.update(_routing_options(config))
    else:
        kwargs.update(
            _env_options(config, delta_time=resolved.decision_interval_s, yellow_time=resolved.yellow_time_s)
        )
    return resolved.kind, kwargs


def _routing_options(config: TrainConfig) -> dict[str, Any]:
    return {
        "k": config.diversion_points,
        "decision_s": config.decision_s,
        "penetration": config.penetration,
        "reward_scale": config.reward_scale,
        "guidance": dict(config.guidance),
        "backend": config.backend,
        "time_to_teleport": -1.0,
    }


def _env_record(kwargs: dict[str, Any], run_dir: Path, *, kind: str, scenario: str) -> dict[str, Any]:
    # RESCO's files live in the sumo-rl wheel: the run names the scenario and finds them again on resume.
    out: dict[str, Any] = {"kind": kind, "resco": scenario if kind == "resco" else None, **kwargs}
    rel = (lambda p: Path(p).name) if kind == "resco" else (lambda p: _rel(p, run_dir))
    out["net_file"] = rel(kwargs["net_file"])
    out["route_files"] = [rel(p) for p in kwargs["route_files"]]
    out["additional_files"] = [rel(p) for p in kwargs["additional_files"]]
    return out


def _env_from_record(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in ("kind", "resco")}
    if record.get("kind") == "resco":
        from roadtwin.sim.resco import resco_files

        net, routes, _, _ = resco_files(str(record["resco"]))
        return {**out, "net_file": net, "route_files": [routes]}
    out["net_file"] = _abs(record["net_file"], run_dir)
    out["route_files"] = [_abs(p, run_dir) for p in record["route_files"]]
    out["additional_files"] = [_abs(p, run_dir) for p in record["additional_files"]]
    return out


def _routing_policy_record(spec: EnvSpec, config: TrainConfig) -> dict[str, Any]:
    """What ``rl-routing`` needs to rebuild the observation and apply the levels."""
    import inspect

    from roadtwin.agents.routing_rl import RoutingEnv

    kw = spec.kwargs
    defaults = {
        name: p.default
        for name, p in inspect.signature(RoutingEnv.__init__).parameters.items()
        if name in ("max_out", "lookahead", "default_level")
    }
    return {
        "task": "routing",
        "algo": config.algo,
        "scenario": config.scenario,
        "points": list(kw["points"]),
        "k": len(kw["points"]),
        "decision_s": kw["decision_s"],
        "penetration": kw["penetration"],
        "reward_scale": kw["reward_scale"],
        "guidance": dict(kw.get("guidance") or {}),
        **{name: kw.get(name, default) for name, default in defaults.items()},
        "obs_size": spec.obs_sizes[0],
        "n_actions": list(spec.n_actions),
    }


def _policy_record(spec: EnvSpec, config: TrainConfig) -> dict[str, Any]:
    if spec.task == "routing":
        return _routing_policy_record(spec, config)
    kw = spec.kwargs
    return {
        "algo": config.algo,
        "tls_ids": list(spec.tls_ids),
        "shared": spec.shared,
        "obs_sizes": list(spec.obs_sizes),
        "n_actions": list(spec.n_actions),
        "obs_pad": spec.obs_pad,
        "act_pad": spec.act_pad,
        **{
            k: kw[k]
            for k in (
                "action_mode",
                "delta_time",
                "yellow_time",
                "all_red_time",
                "min_green",
                "max_green",
                "max_red",
                "cycle_time",
                "neighbours",
                "observation",
            )
        },
    }


# --- run folder ------------------------------------------------------------------------------------------


def load_run_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training run folder's ``config.yaml`` (sections ``train``, ``env``, ``policy``).

    Raises
    ------
    ConfigError
        ``run_dir`` is not a training run folder.
    """
    folder = Path(run_dir)
    path = folder / "config.yaml"
    if not folder.is_dir() or not path.is_file():
        raise ConfigError(
            path=folder, field=None, expected="a training run folder (with config.yaml from agents train)"
        )
    data = read_yaml_mapping(path)
    if not all(isinstance(data.get(k), dict) for k in ("train", "env", "policy")):
        raise ConfigError(
            path=path, field=None, expected="a training run's config (sections train, env and policy)"
        )
    return data


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> tuple[Path, int] | None:
    """The run's last checkpoint and its step count, or ``None`` when it has none."""
    folder = Path(run_dir) / "checkpoints"
    found = []
    for p in folder.glob("model_*_steps.zip") if folder.is_dir() else ():
        m = CHECKPOINT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    if not found:
        return None
    steps, path = max(found)
    return path, steps


def _replay_buffer_path(run_dir: Path, steps: int) -> Path:
    return run_dir / "checkpoints" / f"replay_buffer_{steps}_steps.pkl"


def _save_model(model: BaseAlgorithm, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


# --- callbacks --------------------------------------------------------------------------------------------


def _callbacks(
    *, run_dir: Path, config: TrainConfig, eval_env: VecEnv, num_envs: int, granularity: int, n_agents: int
) -> list[Any]:
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

    def every(steps: int) -> int:
        """Calls between two events: ``steps`` rounded up to whole ``granularity`` blocks."""
        return max(1, math.ceil(steps / granularity)) * (granularity // num_envs)

    class Checkpoint(BaseCallback):
        """SB3's CheckpointCallback, written atomically (buffer first, then the model that needs it)."""

        def __init__(self, save_freq: int) -> None:
            super().__init__()
            self.save_freq = save_freq

        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                self.save()
            return True

        def save(self) -> None:
            steps = self.model.num_timesteps
            folder = run_dir / "checkpoints"
            folder.mkdir(exist_ok=True)
            path = folder / f"model_{steps}_steps.zip"
            if path.exists():
                return
            buffer = _replay_buffer_path(run_dir, steps)
            if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
                with atomic_path(buffer) as tmp:
                    self.model.save_replay_buffer(tmp)  # type: ignore[attr-defined]
            _save_model(self.model, path)
            for old in folder.glob("replay_buffer_*_steps.pkl"):  # only the latest one is needed
                if old != buffer:
                    old.unlink(missing_ok=True)

    class SaveBest(BaseCallback):
        """Called by the EvalCallback on a new best mean reward: save the model and the score."""

        def _on_step(self) -> bool:
            parent = self.parent
            assert parent is not None
            _save_model(self.model, run_dir / "best" / "best_model.zip")
            write_json(
                run_dir / "best" / "best.json",
                {"mean_reward": float(parent.best_mean_reward), "num_timesteps": self.model.num_timesteps},  # type: ignore[attr-defined]
            )
            return True

    evaluator = EvalCallback(
        eval_env,
        callback_on_new_best=SaveBest(),
        n_eval_episodes=config.eval_episodes * n_agents,
        eval_freq=every(config.eval_every),
        deterministic=True,
        verbose=0,
        warn=False,
    )
    best = run_dir / "best" / "best.json"
    if best.is_file():  # a resumed run keeps its best score: a worse evaluation must not replace it
        evaluator.best_mean_reward = float(json.loads(best.read_text())["mean_reward"])
    return [Checkpoint(every(config.checkpoint_every)), evaluator]


# --- the model ---------------------------------------------------------------------------------------------


def _new_model(config: TrainConfig, env: VecEnv) -> BaseAlgorithm:
    from stable_baselines3 import DQN, PPO

    common: dict[str, Any] = {
        "gamma": config.gamma,
        "batch_size": config.batch_size,
        "policy_kwargs": dict(config.policy_kwargs) or None,
        "device": "cpu",
        "verbose": 0,
    }
    if config.algo == "ppo":
        kwargs = {
            **common,
            "learning_rate": config.learning_rate or 3e-4,
            "n_steps": config.n_steps,
            "n_epochs": config.n_epochs,
            "ent_coef": config.ent_coef,
            **config.algo_kwargs,
        }
        return PPO("MlpPolicy", env, **kwargs)
    kwargs = {
        **common,
        "learning_rate": config.learning_rate or 1e-3,
        "buffer_size": config.buffer_size,
        "learning_starts": config.learning_starts,
        "train_freq": config.train_freq,
        "target_update_interval": config.target_update_interval,
        "exploration_fraction": config.exploration_fraction,
        "exploration_final_eps": config.exploration_final_eps,
        **config.algo_kwargs,
    }
    return DQN("MlpPolicy", env, **kwargs)


def _load_model(config: TrainConfig, path: Path, env: VecEnv, run_dir: Path, steps: int) -> BaseAlgorithm:
    from stable_baselines3 import DQN, PPO

    cls = PPO if config.algo == "ppo" else DQN
    try:
        model = cls.load(path, env=env, device="cpu")
    except Exception as exc:
        raise InputError(
            path=path,
            field=None,
            expected=f"a readable {config.algo.upper()} checkpoint (delete it to resume from the one before)",
            got=f"{type(exc).__name__}: {exc}",
        ) from None
    if config.algo == "dqn":
        buffer = _replay_buffer_path(run_dir, steps)
        if buffer.is_file():
            try:
                model.load_replay_buffer(buffer)  # type: ignore[attr-defined]
            except Exception as exc:
                raise InputError(
                    path=buffer, field=None, expected="a readable replay buffer", got=type(exc).__name__
                ) from None
    return model


def _demonstrations(spec: EnvSpec, config: TrainConfig, *, run_dir: Path) -> Demonstrations:
    """Record the run's max-pressure demonstrations (or read back those already recorded)."""
    from roadtwin.agents.imitation import record_demonstrations

    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(total=config.imitate_episodes, desc="max-pressure demonstrations", unit="episode")
    try:
        return record_demonstrations(
            spec.kwargs,
            tls_ids=spec.tls_ids,
            obs_pad=spec.obs_pad,
            episodes=config.imitate_episodes,
            seed=config.seed,
            gamma=config.gamma,
            folder=run_dir / "demonstrations",
            on_episode=None if bar is None else (lambda _: bar.update()),
        )
    finally:
        if bar is not None:
            bar.close()


def _clone(model: BaseAlgorithm, demos: Demonstrations, config: TrainConfig, *, run_dir: Path) -> None:
    """Clone the demonstrations into ``model``, log the fit to TensorBoard and ``imitation.json``, and
    checkpoint the cloned model at step 0 (a resume starts there)."""
    from roadtwin.agents.imitation import clone_policy

    t0 = time.perf_counter()
    fit = clone_policy(
        model,  # type: ignore[arg-type]
        demos,
        epochs=config.imitate_epochs,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    for key, value in fit.items():
        model.logger.record(f"imitation/{key}", value)
    model.logger.dump(0)
    write_json(
        run_dir / "imitation.json",
        {**fit, "episodes": config.imitate_episodes, "dropped_gridlocked": list(demos.dropped),
         "clone_s": round(time.perf_counter() - t0, 1)},
    )  # fmt: skip
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    _save_model(model, folder / "model_0_steps.zip")


def _granularity(config: TrainConfig, num_envs: int) -> int:
    per_env = config.algo_kwargs.get("n_steps", config.n_steps) if config.algo == "ppo" else config.train_freq
    return int(per_env) * num_envs


# --- train ---------------------------------------------------------------------------------------------------


def train(
    config: TrainConfig | None,
    *,
    workspace: Workspace | None = None,
    resume: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> Path:
    """Train a policy; return the training run folder.

    Parameters
    ----------
    config
        The run's settings; ignored (may be ``None``) when resuming: the run's saved ``config.yaml`` is
        used, so that the run ends as it would have without the interruption.
    workspace
        Where the run folder is created (default ``./roadtwin-data``).
    resume
        A training run folder to continue from its last checkpoint to its configured budget.
    progress
        Show (or hide) the progress bar whatever the config says.

    Raises
    ------
    ConfigError
        ``resume`` is not a training run folder, or its ``config.yaml`` is invalid.
    InputError
        The last checkpoint cannot be read.
    """
    from roadtwin.errors import require

    require("stable_baselines3", extra="rl")
    require("supersuit", extra="rl")
    import torch
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.utils import set_random_seed

    ws = workspace or Workspace.at(None)
    checkpoint: tuple[Path, int] | None = None
    if resume is not None:
        run_dir = Path(resume)
        saved = load_run_config(run_dir)
        try:
            config = TrainConfig.model_validate(saved["train"])
        except ValidationError as exc:
            raise validation_error(exc, path=run_dir / "config.yaml") from None
        kwargs = _env_from_record(saved["env"], run_dir)
        checkpoint = latest_checkpoint(run_dir)
        if config.task == "routing":
            spec = routing_env_spec(kwargs)
        else:
            spec = env_spec(kwargs, tls_ids=saved["policy"]["tls_ids"])
    else:
        if config is None:
            raise ConfigError(path=None, field="scenario", expected="a training config or a run to resume")
        if config.task == "routing" and config.algo != "ppo":
            raise ConfigError(
                path=None,
                field="algo",
                expected="ppo for task routing (one level per diversion point: MultiDiscrete actions, "
                "which DQN cannot take)",
                got=config.algo,
            )
        from roadtwin.agents.scenarios import resolve_scenario

        name = resolve_scenario(config.scenario, workspace=ws, duration_s=config.duration_s).name
        run_dir = ws.new_run_dir(scenario=name, controller=config.algo, seed=config.seed)
        kind, kwargs = _prepare_env(config, run_dir=run_dir, workspace=ws)
        if config.task == "routing":
            spec = routing_env_spec(kwargs)
            kwargs = spec.kwargs  # with the diversion points, found once
        else:
            spec = env_spec(kwargs, tls_ids=config.tls_ids)
            kwargs = spec.kwargs  # with the observation an "auto" one became
        write_yaml(
            run_dir / "config.yaml",
            {
                "train": config.model_dump(mode="json"),
                "env": _env_record(kwargs, run_dir, kind=kind, scenario=config.scenario),
                "policy": _policy_record(spec, config),
            },
        )

    if progress is not None:
        config = config.model_copy(update={"progress": progress})
    torch.set_num_threads(config.torch_threads)
    set_random_seed(config.seed)
    done = checkpoint[1] if checkpoint is not None else 0
    n_agents = len(spec.tls_ids) if spec.shared else 1
    num_envs = config.n_envs * n_agents
    # A resumed run's episodes draw fresh SUMO seeds (the same ones would replay the first episodes).
    env_seed = config.seed + done
    env = eval_env = None
    try:
        env = make_vec_env(spec, n_envs=config.n_envs, seed=env_seed, subprocess=config.n_envs > 1)
        eval_env = make_vec_env(
            spec, n_envs=1, seed=config.seed + EVAL_SEED_OFFSET, subprocess=True, replay=True
        )
        if checkpoint is not None:
            model = _load_model(config, checkpoint[0], env, run_dir, checkpoint[1])
        else:
            model = _new_model(config, env)
        model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
        demos = None
        if config.imitate_episodes and (checkpoint is None or config.imitate_coef > 0):
            demos = _demonstrations(spec, config, run_dir=run_dir)
            if checkpoint is None:
                _clone(model, demos, config, run_dir=run_dir)
        granularity = _granularity(config, num_envs)
        budget = math.ceil(config.total_timesteps / granularity) * granularity
        callbacks = _callbacks(
            run_dir=run_dir,
            config=config,
            eval_env=eval_env,
            num_envs=num_envs,
            granularity=granularity,
            n_agents=n_agents,
        )
        if demos is not None and config.imitate_coef > 0:
            from roadtwin.agents.imitation import imitation_callback

            callbacks.append(
                imitation_callback(
                    demos,
                    coef=config.imitate_coef,
                    budget=budget,
                    batch_size=config.batch_size,
                    learning_rate=float(model.lr_schedule(1.0)),  # the model's own (algo_kwargs win)
                    seed=config.seed,
                )
            )
        t0 = time.perf_counter()
        remaining = budget - model.num_timesteps
        if remaining > 0:
            # SB3 adds num_timesteps to the budget it is given when reset_num_timesteps=False.
            model.learn(
                total_timesteps=remaining,
                callback=callbacks,
                progress_bar=config.progress,
                reset_num_timesteps=checkpoint is None,
                tb_log_name=config.algo,
            )
        wall = time.perf_counter() - t0
        callbacks[0].save()
        _save_model(model, run_dir / "final_model.zip")
        trained = model.num_timesteps - done
        write_json(
            run_dir / "train.json",
            {
                "num_timesteps": model.num_timesteps,
                "resumed_from": done if checkpoint is not None else None,
                "wall_time_s": round(wall, 3),
                "steps_per_s": round(trained / wall, 2) if wall > 0 and trained > 0 else None,
            },
        )
    finally:
        for venv in (env, eval_env):
            if venv is not None:
                venv.close()
                _reap(venv)
    return run_dir


def _reap(venv: Any, *, timeout_s: float = 10.0) -> None:
    """Wait for a closed vector env's worker processes to end; kill those that do not.

    SuperSuit's ``ProcConcatVec.close`` sends its workers a message they reject and joins them for
    at most ten seconds in all; SB3's ``SubprocVecEnv`` joins without a limit. Either way no worker
    may outlive training.
    """
    while venv is not None:
        procs = list(getattr(venv, "procs", None) or getattr(venv, "processes", None) or [])
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        venv = getattr(venv, "venv", None)


# --- CLI -------------------------------------------------------------------------------------------------------


def train_command(
    scenario: Annotated[
        str | None, typer.Option(help="RESCO name, zone, built-in scenario or scenario YAML.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="signals (signal control) or routing (guidance at diversion points).")
    ] = None,
    algo: Annotated[str | None, typer.Option(help="ppo or dqn.")] = None,
    timesteps: Annotated[int | None, typer.Option(help="Training budget in agent steps.")] = None,
    n_envs: Annotated[int | None, typer.Option(help="Parallel environments (processes).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between checkpoints.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Steps between evaluations.")] = None,
    duration: Annotated[float | None, typer.Option(help="Train on the window's first seconds only.")] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of the options.")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this training run folder from its last checkpoint.")
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
) -> None:
    """Train a signal-control policy (PPO or DQN; one policy shared across several signals), or with
    --task routing a routing policy (PPO: guidance levels at the zone's diversion points).

    Writes a training run folder with config.yaml, checkpoints/, tb/ (TensorBoard), best/best_model.zip
    and final_model.zip. A run killed at any point continues with --resume RUN_DIR to the same budget
    (the run's saved config.yaml is used; other options are ignored).
    """
    from roadtwin.config import load_options

    data: dict[str, Any] = read_yaml_mapping(config) if config is not None else {}
    resume_dir = resume if resume is not None else data.get("resume")
    if resume_dir is not None:
        ws = Workspace.at(workspace if workspace is not None else data.get("workspace"))
        run_dir = train(None, workspace=ws, resume=Path(resume_dir), progress=progress)
    else:
        opts = load_options(
            TrainOptions, config=config, scenario=scenario, task=task, algo=algo, total_timesteps=timesteps,
            n_envs=n_envs, seed=seed, checkpoint_every=checkpoint_every, eval_every=eval_every,
            duration_s=duration, progress=progress, workspace=workspace,
        )  # fmt: skip
        base = TrainConfig.model_validate(opts.model_dump(exclude={"workspace", "resume"}))
        run_dir = train(base, workspace=Workspace.at(opts.workspace))
    typer.echo(f"training run: {run_dir}")


def main(argv: list[str] | None = None) -> int:
    """Run ``train_command`` alone (``python -m roadtwin.agents.train``); same exit codes as the CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    try:
        app(args=argv, standalone_mode=False)
    except RoadTwinError as exc:
        typer.echo(f"roadtwin: error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # usage errors (Typer vendors click: match by interface, not class)
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return int(exc.exit_code)
        raise
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
