"""Gymnasium and PettingZoo environments for traffic-signal control over any SUMO network.

``import roadtwin.sim.env`` registers ``roadtwin/TrafficSignal-v0`` with Gymnasium (single signal; the
other signals run their own programs) and lists ``roadtwin/TrafficSignalParallel-v0`` in :data:`ENV_IDS`
for :func:`make_parallel` (every or some signals, one agent each). Importing ``roadtwin.sim`` does not
load this module, so Gymnasium and PettingZoo stay optional (the ``rl`` extra).

Both environments share one core:

**Observation** (``Box(0, 1)``, float32, fixed size per signal), ``observation="lanes"`` (default): for each
incoming vehicle lane ``[halting / capacity, vehicles / capacity, mean speed / speed limit]`` (capacity =
length / 7.5 m), then a one-hot of the current green (``action_mode="phase"``) or of the current plan
(``"timing"``), then, in phase mode, the time in the current green / ``max_green``; with
``neighbours=True``, one value per neighbouring signal (its incoming halting vehicles / capacity).

``observation="phases"`` (phase mode; MPLight/FRAP's phase-level state): one slot of six values per green,
as many slots as the layout's signal with the most greens, so that slot *k* is action *k* at every signal
and one shared policy reads every signal alike: ``[green exists, green is current, halting vehicles it
serves (with the vehicles waiting to enter the network onto its lanes), moving vehicles it serves,
mean occupancy of the lanes it feeds, time since it was last shown / max_red]`` (counts *c* as
``c / (c + 10)``, summed over its movements as max-pressure sums them), then the time in the current
green / ``max_green`` and the signal's insertion backlog *b* as ``b / (b + 5)``; with
``neighbours=True``, the neighbours' values as above. ``roadtwin agents train`` observes phases when
several signals share a policy (``observation: auto``).

**Actions.** ``"phase"``: ``Discrete(n_greens)``, the green to show until the next decision, every
``delta_time`` s. The environment inserts yellow (and all-red) between different greens, ignores a switch
before ``min_green`` and ends a green that would pass ``max_green`` (next green in cycle order); with
``max_red``, a green unserved for ``max_red`` s is shown next whatever was asked (no approach starves).
``"timing"``: ``Discrete(n_greens + 1)``, the green-split plan of the next cycle (plan 0 equal split,
plan k doubles green k - 1's share; :func:`~roadtwin.sim.signals.green_splits`); a step lasts one
``cycle_time`` and SUMO runs the plan's phases itself.

**Rewards** (per signal, measured at the decision, higher is better):

- ``"queue"``: minus the halting vehicles on the incoming lanes;
- ``"pressure"``: minus \\|sum over movements of in-lane minus out-lane vehicles\\| (PressLight);
- ``"delay"``: minus the incoming vehicles x (1 - speed / limit) (vehicle-seconds of delay per second);
- ``"wait"``: minus the incoming vehicles' current waiting times, in vehicle-minutes;

each minus ``backlog_weight`` x the signal's insertion backlog: vehicles that SUMO cannot insert because
their entry is full, attributed to the first signal downstream of their departure edge. The term is on by
default because a reward blind to it is maximised by blocking an entry: the queue then grows outside the
network, where lane measures do not see it (sumo-rl's default reward does this; REFERENCE.md).

``info`` holds the measures of the step (``time``, ``queue``, ``pressure``, ``delay``, ``backlog``,
``pending``, ``green`` or ``plan``, ``switched``, and ``wait`` with the ``"wait"`` reward). An episode ends (truncated, for every agent)
when ``end`` is reached; each reset restarts SUMO with a new seed drawn from the environment's generator.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from roadtwin import toolchain
from roadtwin.errors import ConfigError, InputError, MissingExtraError, RoadTwinError, SimulationError
from roadtwin.sim.backend import BACKENDS, DEFAULT_BACKEND, Backend, SumoSession, start
from roadtwin.sim.signals import (
    PlanActuator,
    SignalActuator,
    SignalLayout,
    SignalMeasures,
    SignalMonitor,
    SignalNetwork,
    read_signal_network,
)

try:
    import gymnasium
    from gymnasium import spaces
    from gymnasium.utils import seeding
    from pettingzoo import ParallelEnv
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(package=exc.name or "gymnasium", extra="rl") from exc

__all__ = [
    "ACTION_MODES",
    "ENV_ID",
    "ENV_IDS",
    "OBSERVATIONS",
    "PARALLEL_ENV_ID",
    "REWARDS",
    "ActionMode",
    "ObservationKind",
    "RewardName",
    "SignalObserver",
    "TrafficSignalEnv",
    "TrafficSignalParallelEnv",
    "episode_command",
    "episode_seed",
    "make_parallel",
    "pad_observations",
    "parallel_env",
    "signal_rewards",
]

ActionMode = Literal["phase", "timing"]
ObservationKind = Literal["lanes", "phases"]
RewardName = Literal["pressure", "queue", "delay", "wait"]
ACTION_MODES: tuple[ActionMode, ...] = ("phase", "timing")
OBSERVATIONS: tuple[ObservationKind, ...] = ("lanes", "phases")
REWARDS: tuple[RewardName, ...] = ("pressure", "queue", "delay", "wait")

ENV_ID = "roadtwin/TrafficSignal-v0"
PARALLEL_ENV_ID = "roadtwin/TrafficSignalParallel-v0"

PathLike = str | os.PathLike[str]


def _paths(value: PathLike | Sequence[PathLike] | None, field: str) -> tuple[Path, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str | os.PathLike) else list(value)
    paths = tuple(Path(p) for p in items)
    for p in paths:
        if not p.is_file():
            raise InputError(path=p, field=field, expected="an existing file", got=str(p))
    return paths


# --- network probe (cached per process) -----------------------------------------------------------------

_NETWORKS: dict[tuple[object, ...], SignalNetwork] = {}


def _libsumo_busy() -> bool:
    """Whether a libsumo simulation is loaded in this process (a probe must not replace it)."""
    libsumo = toolchain.import_libsumo()
    try:
        return bool(libsumo.simulation.isLoaded())
    except Exception:  # pragma: no cover - an older libsumo
        return False


def _signal_network(net_file: Path, additional: tuple[Path, ...]) -> SignalNetwork:
    """Read a network's signals once per process (SUMO started on the network alone, then closed)."""
    key: tuple[object, ...] = tuple(
        (str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in (net_file, *additional)
    )
    if key not in _NETWORKS:
        cmd = [
            toolchain.binary("sumo"),
            "-n",
            str(net_file),
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
        ]
        if additional:
            cmd += ["-a", ",".join(str(p) for p in additional)]
        backend: Backend = "traci" if _libsumo_busy() else "libsumo"
        session = start(cmd, backend=backend, label=f"roadtwin-probe-{os.getpid()}-{len(_NETWORKS)}")
        try:
            _NETWORKS[key] = read_signal_network(session.conn)
        finally:
            session.close()
    return _NETWORKS[key]


# --- observation -----------------------------------------------------------------------------------------


class SignalObserver:
    """The environments' observation of a layout's signals, computed from one :class:`SignalMeasures`.

    Public so that a policy trained in an environment sees the same observation when it drives a run
    (``roadtwin.agents.rl``): build the layout, this observer and its :meth:`monitor` on the live
    simulation.

    Parameters
    ----------
    layout
        The controlled signals.
    n_choices
        Per signal, the number of choices one-hot encoded (greens in phase mode, plans in timing mode).
    with_age
        Append the time in the current green / ``max_green`` (phase mode).
    max_green
        The green-age normaliser (s).
    kind
        ``"lanes"`` (per incoming lane) or ``"phases"`` (per green, phase mode only; module docstring).
    max_red
        ``"phases"``: the normaliser of a green's time since it was last shown (s): the actuator's
        ``max_red``, or :attr:`RED_SCALE` when it sets no bound.
    """

    #: Values per green slot of the ``"phases"`` observation.
    PHASE_FEATURES = 6
    #: Half-saturation of the counts (vehicles) and of the backlog in the ``"phases"`` observation.
    COUNT_SCALE = 10.0
    BACKLOG_SCALE = 5.0
    #: ``"phases"``: the red-time normaliser (s) without a ``max_red``.
    RED_SCALE = 120.0

    def __init__(
        self,
        layout: SignalLayout,
        *,
        n_choices: Sequence[int] | np.ndarray,
        with_age: bool,
        max_green: float,
        kind: ObservationKind = "lanes",
        max_red: float | None = None,
    ) -> None:
        if kind not in OBSERVATIONS:
            raise ConfigError(path=None, field="observation", expected=f"one of {OBSERVATIONS}", got=kind)
        if kind == "phases" and not with_age:
            raise ConfigError(
                path=None,
                field="observation",
                expected='"lanes" in timing mode (phases need phase mode)',
                got=kind,
            )
        # Observation assembly: one fancy-index into a source vector, then a split per signal.
        self.layout = lay = layout
        self.kind: ObservationKind = kind
        self.with_age = bool(with_age)
        self.max_green = float(max_green)
        self.red_scale = self.RED_SCALE if max_red is None else float(max_red)
        n_actions = np.asarray(n_choices, dtype=np.intp)
        n = lay.n_signals
        n_neigh = np.bincount(lay.neighbour_owner, minlength=n).astype(np.intp)
        lane_off = np.concatenate([[0], np.cumsum(lay.n_in_lanes)])
        choice_off = np.concatenate([[0], np.cumsum(n_actions)])
        neigh_off = np.concatenate([[0], np.cumsum(n_neigh)])
        #: ``"phases"``: green slots per signal (the most greens of any signal in the layout).
        self.slots = int(lay.n_greens.max()) if n else 0
        if kind == "phases":
            width = self.PHASE_FEATURES * self.slots
            n_lane_src, n_choice_src = n * width, 0
        else:
            n_lane_src, n_choice_src = 3 * int(lane_off[-1]), int(choice_off[-1])
        age_src = n_lane_src + n_choice_src
        backlog_src = age_src + n
        neigh_src = backlog_src + (n if kind == "phases" else 0)
        gather: list[np.ndarray] = []
        sizes = []
        for s in range(n):
            if kind == "phases":
                parts = [np.arange(s * width, (s + 1) * width), np.array([age_src + s, backlog_src + s])]
            else:
                parts = [
                    np.arange(3 * lane_off[s], 3 * lane_off[s + 1]),
                    n_lane_src + np.arange(choice_off[s], choice_off[s + 1]),
                ]
                if self.with_age:
                    parts.append(np.array([age_src + s]))
            parts.append(neigh_src + np.arange(neigh_off[s], neigh_off[s + 1]))
            idx = np.concatenate(parts).astype(np.intp)
            gather.append(idx)
            sizes.append(len(idx))
        self._gather = np.concatenate(gather) if gather else np.zeros(0, dtype=np.intp)
        self._obs_split = np.cumsum(sizes)[:-1]
        #: Observation length per signal.
        self.sizes: tuple[int, ...] = tuple(sizes)
        self._choice_off = choice_off[:-1].astype(np.intp)
        self._n_choice_src = n_choice_src
        self._in_capacity = lay.capacity[lay.in_idx]
        obs_cap = lay.per_signal(lay.capacity[lay.obs_in_idx], lay.obs_in_owner, len(lay.observed_ids))
        self._obs_capacity = np.maximum(obs_cap, 1.0)
        if kind == "phases":
            owner = np.repeat(np.arange(n), lay.n_greens)
            local = np.arange(int(lay.green_offset[-1])) - lay.green_offset[owner]
            #: Position of each (flat) green in the ``(signals, slots)`` grid.
            self._slot = (owner * self.slots + local).astype(np.intp)
            self._movements = np.maximum(lay.green_sums(np.ones(len(lay.move_in))), 1.0)
            self._out_capacity = np.maximum(lay.capacity[lay.move_out], 1.0)

    def monitor(self, *, waiting_time: bool = False) -> SignalMonitor:
        """A monitor of the layout that measures what this observation needs and no more (every
        subscribed variable costs on each step): the per-lane insertion backlog for ``"phases"``, and the
        waiting time if asked (the ``"wait"`` reward)."""
        return SignalMonitor(
            self.layout, waiting_time=waiting_time, outgoing_halting=False, lane_backlog=self.kind == "phases"
        )

    def observe(
        self,
        m: SignalMeasures,
        *,
        choice: np.ndarray,
        age: np.ndarray | None = None,
        red: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Per signal, the float32 observation given the current green (or plan) ``choice`` and, in
        phase mode, each green's ``age`` (s) and (``"phases"``) each green's time since it was last shown
        (``red``, signals x slots, s; :attr:`~roadtwin.sim.signals.SignalActuator.red`)."""
        lay = self.layout
        if self.with_age and age is not None:
            ages = np.clip(np.asarray(age, dtype=float) / self.max_green, 0.0, 1.0)
        else:
            ages = np.zeros(lay.n_signals)
        queues = lay.per_signal(m.lane_halting[lay.obs_in_idx], lay.obs_in_owner, len(lay.observed_ids))
        neigh = np.minimum(queues / self._obs_capacity, 1.0)[lay.neighbour_idx]
        if self.kind == "phases":
            head = self._phase_slots(m, choice=choice, red=red).ravel()
            backlog = m.backlog / (m.backlog + self.BACKLOG_SCALE)
            src = np.concatenate([head, ages, backlog, neigh])
        else:
            idx = lay.in_idx
            lanes = np.empty((len(idx), 3))
            np.minimum(m.lane_halting[idx] / self._in_capacity, 1.0, out=lanes[:, 0])
            np.minimum(m.lane_vehicles[idx] / self._in_capacity, 1.0, out=lanes[:, 1])
            lanes[:, 2] = m.lane_speed[idx]
            onehot = np.zeros(self._n_choice_src)
            onehot[self._choice_off + np.asarray(choice, dtype=np.intp)] = 1.0
            src = np.concatenate([lanes.ravel(), onehot, ages, neigh])
        return np.split(src[self._gather].astype(np.float32), self._obs_split)

    def _phase_slots(self, m: SignalMeasures, *, choice: np.ndarray, red: np.ndarray | None) -> np.ndarray:
        """The ``(signals, slots, PHASE_FEATURES)`` block of the ``"phases"`` observation."""
        lay = self.layout
        k = self.COUNT_SCALE
        halting = m.lane_halting[lay.move_in]
        moving = np.maximum(m.lane_vehicles[lay.move_in] - halting, 0.0)
        if m.lane_backlog is not None:  # vehicles kept out of a full entry wait for this lane too
            halting = halting + m.lane_backlog[lay.move_in]
        occupancy = np.minimum(m.lane_vehicles[lay.move_out] / self._out_capacity, 1.0)
        h, v, o = (lay.green_sums(x) for x in (halting, moving, occupancy))
        flat = np.zeros((lay.n_signals * self.slots, self.PHASE_FEATURES))
        flat[self._slot, 0] = 1.0
        flat[self._slot, 2] = h / (h + k)
        flat[self._slot, 3] = v / (v + k)
        flat[self._slot, 4] = o / self._movements
        out = flat.reshape(lay.n_signals, self.slots, self.PHASE_FEATURES)
        out[np.arange(lay.n_signals), np.asarray(choice, dtype=np.intp), 1] = 1.0
        if red is not None:
            r = np.asarray(red, dtype=float)[:, : self.slots]
            out[..., 5] = np.clip(np.where(np.isfinite(r), r, 0.0) / self.red_scale, 0.0, 1.0)
            out[np.arange(lay.n_signals), np.asarray(choice, dtype=np.intp), 5] = 0.0
        return out


# --- the shared core ------------------------------------------------------------------------------------

#: The core whose simulation libsumo runs in this process, with the process id (a forked child starts afresh).
_libsumo_owner: tuple[int, weakref.ReferenceType[_SignalControl]] | None = None


def _libsumo_holder() -> _SignalControl | None:
    if _libsumo_owner is None or _libsumo_owner[0] != os.getpid():
        return None
    return _libsumo_owner[1]()


class _SignalControl:
    """SUMO, the signals' layout, measurement and actuation behind both environments."""

    def __init__(
        self,
        *,
        net_file: PathLike,
        route_files: PathLike | Sequence[PathLike],
        additional_files: PathLike | Sequence[PathLike] | None,
        begin: float,
        end: float,
        tls_ids: Sequence[str] | None,
        single: bool = False,
        delta_time: float,
        yellow_time: float,
        all_red_time: float,
        min_green: float,
        max_green: float,
        max_red: float | None,
        action_mode: ActionMode,
        cycle_time: float,
        reward: RewardName,
        backlog_weight: float,
        backend: Backend,
        sumo_args: Sequence[str],
        time_to_teleport: float,
        neighbours: bool,
        sumo_warnings: bool,
        observation: ObservationKind = "lanes",
    ) -> None:
        self.net_file = _paths(net_file, "net_file")[0]
        self.route_files = _paths(route_files, "route_files")
        self.additional_files = _paths(additional_files, "additional_files")
        if not end > begin:
            raise ConfigError(
                path=None, field="end", expected=f"an end time after begin ({begin:g} s)", got=end
            )
        if action_mode not in ACTION_MODES:
            raise ConfigError(
                path=None, field="action_mode", expected=f"one of {ACTION_MODES}", got=action_mode
            )
        if reward not in REWARDS:
            raise ConfigError(path=None, field="reward", expected=f"one of {REWARDS}", got=reward)
        if backend not in BACKENDS:
            raise ConfigError(path=None, field="backend", expected=f"one of {BACKENDS}", got=backend)
        if backlog_weight < 0:
            raise ConfigError(path=None, field="backlog_weight", expected="a weight >= 0", got=backlog_weight)
        if action_mode == "phase" and not delta_time > yellow_time + all_red_time:
            raise ConfigError(
                path=None,
                field="delta_time",
                expected=f"a decision interval longer than yellow + all-red ({yellow_time + all_red_time:g} s)",
                got=delta_time,
            )
        if action_mode == "phase" and max_green < delta_time:
            raise ConfigError(
                path=None,
                field="max_green",
                expected=f"a max green of at least one decision interval ({delta_time:g} s)",
                got=max_green,
            )
        if isinstance(sumo_args, str):
            raise ConfigError(path=None, field="sumo_args", expected="a sequence of arguments", got=sumo_args)
        self.begin, self.end = float(begin), float(end)
        self.delta_time = float(delta_time)
        self.max_green = float(max_green)
        self.action_mode: ActionMode = action_mode
        self.reward: RewardName = reward
        self.backlog_weight = float(backlog_weight)
        self.backend: Backend = backend
        self.sumo_args = tuple(str(a) for a in sumo_args)
        self.time_to_teleport = float(time_to_teleport)
        self.sumo_warnings = bool(sumo_warnings)

        network = _signal_network(self.net_file, self.additional_files)
        chosen = list(tls_ids) if tls_ids is not None else list(network.controllable())
        if single:
            chosen = chosen[:1]
        self.layout = SignalLayout(network, chosen, neighbours=neighbours)
        lay = self.layout
        self.actuator: SignalActuator | None = None
        self.planner: PlanActuator | None = None
        if action_mode == "phase":
            self.actuator = SignalActuator(
                lay,
                yellow_time=yellow_time,
                all_red_time=all_red_time,
                min_green=min_green,
                max_green=max_green,
                max_red=max_red,
            )
            self.n_actions = lay.n_greens.copy()
            self.step_length = self.delta_time
        else:
            self.planner = PlanActuator(
                lay,
                cycle_time=cycle_time,
                yellow_time=yellow_time,
                all_red_time=all_red_time,
                min_green=min_green,
                max_green=max_green,
            )
            self.n_actions = self.planner.n_plans.copy()
            self.step_length = float(cycle_time)
        self.observer = SignalObserver(
            lay,
            n_choices=self.n_actions,
            with_age=action_mode == "phase",
            max_green=self.max_green,
            kind=observation,
            max_red=max_red,
        )
        self.monitor = self.observer.monitor(waiting_time=reward == "wait")
        self.obs_sizes = self.observer.sizes
        self.session: SumoSession | None = None
        self.done = True
        self.label = f"roadtwin-env-{os.getpid()}-{id(self):x}"

    def _observe(self, m: SignalMeasures) -> list[np.ndarray]:
        if self.actuator is not None:
            return self.observer.observe(
                m, choice=self.actuator.green, age=self.actuator.age, red=self.actuator.red
            )
        assert self.planner is not None
        return self.observer.observe(m, choice=self.planner.plan)

    def _rewards(self, m: SignalMeasures) -> np.ndarray:
        return signal_rewards(m, reward=self.reward, backlog_weight=self.backlog_weight)

    def _infos(self, m: SignalMeasures, switched: np.ndarray) -> list[dict[str, Any]]:
        control = "green" if self.actuator is not None else "plan"
        current = (self.actuator.green if self.actuator is not None else self.planner.plan).tolist()  # type: ignore[union-attr]
        cols = {
            "queue": m.queue.tolist(),
            "pressure": m.pressure.tolist(),
            "delay": m.delay.tolist(),
            "backlog": m.backlog.tolist(),
        }
        if self.monitor.waiting_time:
            cols["wait"] = m.wait.tolist()
        sw = switched.tolist()
        return [
            {
                "time": m.time,
                **{k: v[s] for k, v in cols.items()},
                "pending": m.pending,
                control: current[s],
                "switched": sw[s],
            }
            for s in range(self.layout.n_signals)
        ]

    def command(self, seed: int) -> list[str]:
        """The ``sumo`` command line of an episode with SUMO seed ``seed``."""
        return episode_command(self, seed=seed)

    def start(self, seed: int) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Restart SUMO with ``seed`` and return the first observations and infos."""
        global _libsumo_owner
        self.close()
        if self.backend == "libsumo":
            owner = _libsumo_holder()
            if owner is not None and owner is not self and owner.session is not None:
                raise SimulationError(
                    "libsumo runs one simulation per process and another environment's is open: close it, "
                    'use backend="traci", or run environments in separate processes'
                )
        self.session = start(self.command(seed), backend=self.backend, label=self.label)
        if self.backend == "libsumo":
            _libsumo_owner = (os.getpid(), weakref.ref(self))
        try:
            conn = self.session.conn
            self.monitor.subscribe(conn)
            if self.actuator is not None:
                self.actuator.reset(conn)
            else:
                assert self.planner is not None
                self.planner.reset(conn)
            m = self.monitor.measure(conn)
        except BaseException as exc:
            self.close()
            raise _simulation_error(exc) from exc
        self.done = False
        return self._observe(m), self._infos(m, np.zeros(self.layout.n_signals, dtype=bool))

    def step(self, actions: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, bool, list[dict[str, Any]]]:
        """Apply one action per signal and run to the next decision."""
        if self.session is None or self.done:
            raise SimulationError("the episode is over (or never started): call reset() first")
        actions = np.asarray(actions, dtype=np.intp)
        if actions.shape != self.n_actions.shape or np.any(actions < 0) or np.any(actions >= self.n_actions):
            raise ConfigError(
                path=None,
                field="action",
                expected=f"per signal an action below {self.n_actions.tolist()}",
                got=actions,
            )
        session = self.session
        try:
            until = min(session.time + self.step_length, self.end)
            if self.actuator is not None:
                switched = self.actuator.step(session, actions, until=until)
            else:
                assert self.planner is not None
                switched = self.planner.step(session, actions, until=until)
            m = self.monitor.measure(session.conn)
        except BaseException as exc:
            self.close()
            raise _simulation_error(exc) from exc
        self.done = m.time >= self.end - 1e-6
        return self._observe(m), self._rewards(m), self.done, self._infos(m, switched)

    def close(self) -> None:
        """Close SUMO (writing its outputs, e.g. tripinfo); safe to call twice."""
        global _libsumo_owner
        if self.session is not None:
            session, self.session = self.session, None
            session.close()
            if _libsumo_holder() is self:
                _libsumo_owner = None
        self.done = True

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have taken SUMO already
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["session"] = None  # a copy starts its own SUMO on reset
        state["done"] = True
        return state


def pad_observations(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    """Per-signal observations as one float32 batch, zero-padded at the end to ``width`` (SuperSuit's
    ``pad_observations_v0``, as a shared policy saw them in training)."""
    batch = np.zeros((len(rows), int(width)), dtype=np.float32)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    return batch


def signal_rewards(m: SignalMeasures, *, reward: RewardName, backlog_weight: float) -> np.ndarray:
    """Per signal, the environments' reward for measure ``m``: minus the ``reward`` measure and the
    insertion backlog times ``backlog_weight`` (``"wait"`` needs a monitor that measures waiting times)."""
    base = {
        "queue": m.queue,
        "pressure": np.abs(m.pressure),
        "delay": m.delay,
        "wait": m.wait / 60.0,
    }[reward]
    return -(base + backlog_weight * m.backlog)


def _simulation_error(exc: BaseException) -> BaseException:
    if isinstance(exc, RoadTwinError | KeyboardInterrupt | SystemExit):
        return exc
    return SimulationError(f"SUMO failed during the episode: {exc}")


def _sumo_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def episode_seed(seed: int) -> int:
    """The SUMO seed of the episode that ``reset(seed=seed)`` starts (either environment)."""
    return _sumo_seed(seeding.np_random(seed)[0])


# --- Gymnasium: one signal ------------------------------------------------------------------------------


class TrafficSignalEnv(gymnasium.Env[np.ndarray, np.int64]):
    """One signal controlled by the agent; the network's other signals run their own programs.

    Observation, actions, rewards and episodes are described in the module docstring.

    Parameters
    ----------
    net_file
        The SUMO network (``.net.xml``).
    route_files
        One or more route files.
    begin, end
        The simulated window (s); an episode ends (truncated) at ``end``.
    tls_id
        The signal to control; default the first (sorted by id) with at least two distinct greens.
    additional_files
        Extra SUMO inputs loaded with the network (signal programs, detectors, outputs).
    delta_time
        Seconds between decisions in phase mode (RESCO: 10).
    yellow_time, all_red_time
        Transition times inserted between two greens (RESCO: 3 and 0).
    min_green, max_green
        Bounds on a green's duration (phase mode) and on every plan's greens (timing mode).
    max_red
        Phase mode: the longest a green may go unserved (s); ``None`` (default) sets no bound.
        ``roadtwin agents train`` sets 120 s so that a policy cannot starve an approach.
    action_mode
        ``"phase"`` (choose the next green) or ``"timing"`` (choose the next cycle's green-split plan).
    cycle_time
        Cycle length in timing mode (s); a step then lasts one cycle.
    reward
        ``"pressure"``, ``"queue"``, ``"delay"`` or ``"wait"``.
    backlog_weight
        Weight of the insertion backlog in the reward (0 turns it off; see the module docstring).
    backend
        ``"libsumo"`` (default; one simulation per process) or ``"traci"``.
    sumo_args
        Extra ``sumo`` options, e.g. ``["--tripinfo-output", "trips.xml",
        "--tripinfo-output.write-unfinished", "true"]`` to evaluate a policy with RESCO's delay; SUMO
        writes such outputs when the episode's simulation closes (next ``reset`` or ``close``), to the
        same files each episode.
    seed
        Seed of the first reset when ``reset`` gets none; later resets draw new SUMO seeds from it.
    time_to_teleport
        SUMO's ``--time-to-teleport``; ``-1`` (default) disables teleporting, as RESCO does.
    neighbours
        Append one queue value per neighbouring signal to the observation.
    observation
        ``"lanes"`` (per incoming lane) or ``"phases"`` (per green; phase mode only).
    render_mode
        Only ``None``: SUMO runs headless.
    sumo_warnings
        Let SUMO print its warnings.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(
        self,
        *,
        net_file: PathLike,
        route_files: PathLike | Sequence[PathLike],
        begin: float = 0.0,
        end: float = 3600.0,
        tls_id: str | None = None,
        additional_files: PathLike | Sequence[PathLike] | None = None,
        delta_time: float = 10.0,
        yellow_time: float = 3.0,
        all_red_time: float = 0.0,
        min_green: float = 5.0,
        max_green: float = 60.0,
        max_red: float | None = None,
        action_mode: ActionMode = "phase",
        cycle_time: float = 90.0,
        reward: RewardName = "queue",
        backlog_weight: float = 1.0,
        backend: Backend = DEFAULT_BACKEND,
        sumo_args: Sequence[str] = (),
        seed: int | None = None,
        time_to_teleport: float = -1.0,
        neighbours: bool = False,
        observation: ObservationKind = "lanes",
        render_mode: str | None = None,
        sumo_warnings: bool = False,
    ) -> None:
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self._core = _SignalControl(
            net_file=net_file,
            route_files=route_files,
            additional_files=additional_files,
            begin=begin,
            end=end,
            tls_ids=None if tls_id is None else [tls_id],
            single=True,
            delta_time=delta_time,
            yellow_time=yellow_time,
            all_red_time=all_red_time,
            min_green=min_green,
            max_green=max_green,
            max_red=max_red,
            action_mode=action_mode,
            cycle_time=cycle_time,
            reward=reward,
            backlog_weight=backlog_weight,
            backend=backend,
            sumo_args=sumo_args,
            time_to_teleport=time_to_teleport,
            neighbours=neighbours,
            sumo_warnings=sumo_warnings,
            observation=observation,
        )
        self.tls_id: str = self._core.layout.tls_ids[0]
        self._seed = seed
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self._core.obs_sizes[0],), dtype=np.float32)
        self.action_space = spaces.Discrete(int(self._core.n_actions[0]))

    @property
    def session(self) -> SumoSession | None:
        """The running simulation (``None`` between episodes)."""
        return self._core.session

    def command(self, seed: int) -> list[str]:
        """The ``sumo`` command line of an episode with SUMO seed ``seed`` (to run it outside the env)."""
        return self._core.command(seed)

    @property
    def layout(self) -> SignalLayout:
        """The controlled signal's layout (lanes, greens, movements)."""
        return self._core.layout

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Restart SUMO with a new seed and return the first observation."""
        # The constructor's seed stands for the first reset's; an explicit seed supersedes it for good.
        seed, self._seed = (self._seed if seed is None else seed), None
        super().reset(seed=seed)
        obs, infos = self._core.start(_sumo_seed(self.np_random))
        return obs[0], infos[0]

    def step(self, action: int | np.integer[Any]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` and run to the next decision."""
        obs, rewards, done, infos = self._core.step(np.array([np.asarray(action).item()], dtype=np.intp))
        return obs[0], float(rewards[0]), False, done, infos[0]

    def render(self) -> None:
        """Nothing to render: SUMO runs headless."""
        return None

    def close(self) -> None:
        """Close SUMO; safe to call twice."""
        self._core.close()


# --- PettingZoo: many signals ---------------------------------------------------------------------------


class TrafficSignalParallelEnv(ParallelEnv[str, np.ndarray, np.int64]):
    """Every (or each chosen) signal is an agent named by its traffic-light id; all act together.

    Observation, actions, rewards and episodes are described in the module docstring; parameters are
    those of :class:`TrafficSignalEnv`, with ``tls_ids`` (default: every signal with at least two distinct
    greens, sorted) instead of ``tls_id``. At the end every agent is truncated and ``agents`` empties.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 - PettingZoo's class attribute
        "name": "roadtwin_traffic_signal_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        *,
        net_file: PathLike,
        route_files: PathLike | Sequence[PathLike],
        begin: float = 0.0,
        end: float = 3600.0,
        tls_ids: Sequence[str] | None = None,
        additional_files: PathLike | Sequence[PathLike] | None = None,
        delta_time: float = 10.0,
        yellow_time: float = 3.0,
        all_red_time: float = 0.0,
        min_green: float = 5.0,
        max_green: float = 60.0,
        max_red: float | None = None,
        action_mode: ActionMode = "phase",
        cycle_time: float = 90.0,
        reward: RewardName = "queue",
        backlog_weight: float = 1.0,
        backend: Backend = DEFAULT_BACKEND,
        sumo_args: Sequence[str] = (),
        seed: int | None = None,
        time_to_teleport: float = -1.0,
        neighbours: bool = False,
        observation: ObservationKind = "lanes",
        render_mode: str | None = None,
        sumo_warnings: bool = False,
    ) -> None:
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self._core = _SignalControl(
            net_file=net_file,
            route_files=route_files,
            additional_files=additional_files,
            begin=begin,
            end=end,
            tls_ids=tls_ids,
            delta_time=delta_time,
            yellow_time=yellow_time,
            all_red_time=all_red_time,
            min_green=min_green,
            max_green=max_green,
            max_red=max_red,
            action_mode=action_mode,
            cycle_time=cycle_time,
            reward=reward,
            backlog_weight=backlog_weight,
            backend=backend,
            sumo_args=sumo_args,
            time_to_teleport=time_to_teleport,
            neighbours=neighbours,
            sumo_warnings=sumo_warnings,
            observation=observation,
        )
        lay = self._core.layout
        self.possible_agents: list[str] = list(lay.tls_ids)
        self.agents: list[str] = []
        self.observation_spaces = {
            a: spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
            for a, size in zip(self.possible_agents, self._core.obs_sizes, strict=True)
        }
        self.action_spaces = {
            a: spaces.Discrete(int(k))
            for a, k in zip(self.possible_agents, self._core.n_actions, strict=True)
        }
        self._seed = seed
        self._np_random: np.random.Generator | None = None

    @property
    def session(self) -> SumoSession | None:
        """The running simulation (``None`` between episodes)."""
        return self._core.session

    def command(self, seed: int) -> list[str]:
        """The ``sumo`` command line of an episode with SUMO seed ``seed`` (to run it outside the env)."""
        return self._core.command(seed)

    @property
    def layout(self) -> SignalLayout:
        """The controlled signals' layout (lanes, greens, movements), in agent order."""
        return self._core.layout

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        """The agent's observation space (the same object on every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        """The agent's action space (the same object on every call)."""
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Restart SUMO with a new seed; every agent is alive again."""
        # The constructor's seed stands for the first reset's; an explicit seed supersedes it for good.
        seed, self._seed = (self._seed if seed is None else seed), None
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        obs, infos = self._core.start(_sumo_seed(self._np_random))
        self.agents = list(self.possible_agents)
        return dict(zip(self.agents, obs, strict=True)), dict(zip(self.agents, infos, strict=True))

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Apply the agents' actions (a missing agent keeps its green or plan) and run to the next decision."""
        core = self._core
        if core.actuator is not None:
            current = core.actuator.green
        else:
            assert core.planner is not None
            current = core.planner.plan
        act = current.copy()
        for a, value in actions.items():
            act[core.layout.index(a)] = int(value)
        obs, rewards, done, infos = core.step(act)
        agents = self.possible_agents
        rew = rewards.tolist()
        result = (
            dict(zip(agents, obs, strict=True)),
            dict(zip(agents, rew, strict=True)),
            dict.fromkeys(agents, False),
            dict.fromkeys(agents, done),
            dict(zip(agents, infos, strict=True)),
        )
        if done:
            self.agents = []
        return result

    def render(self) -> None:
        """Nothing to render: SUMO runs headless."""
        return None

    def close(self) -> None:
        """Close SUMO; safe to call twice."""
        self._core.close()


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode is not None:
        raise ConfigError(
            path=None, field="render_mode", expected="None (SUMO runs headless)", got=render_mode
        )


# --- registration ---------------------------------------------------------------------------------------


def parallel_env(**kwargs: Any) -> TrafficSignalParallelEnv:
    """Create a :class:`TrafficSignalParallelEnv` (PettingZoo's factory convention)."""
    return TrafficSignalParallelEnv(**kwargs)


#: PettingZoo has no registry: environment ids and their factories.
ENV_IDS: dict[str, Callable[..., TrafficSignalParallelEnv]] = {PARALLEL_ENV_ID: parallel_env}


def make_parallel(env_id: str, **kwargs: Any) -> TrafficSignalParallelEnv:
    """Create the parallel environment registered as ``env_id`` in :data:`ENV_IDS`."""
    if env_id not in ENV_IDS:
        raise ConfigError(path=None, field="env_id", expected=f"one of {sorted(ENV_IDS)}", got=env_id)
    return ENV_IDS[env_id](**kwargs)


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="roadtwin.sim.env:TrafficSignalEnv")


def episode_command(env: Any, *, seed: int) -> list[str]:
    """The ``sumo`` command line of an episode of ``env`` with SUMO seed ``seed``.

    ``env`` has ``net_file``, ``begin``, ``end``, ``time_to_teleport``, ``route_files``,
    ``additional_files``, ``sumo_warnings`` and ``sumo_args`` (the signal and the routing environments).
    """
    cmd = [
        toolchain.binary("sumo"),
        "-n", str(env.net_file),
        "-b", f"{env.begin:g}",
        "-e", f"{env.end:g}",
        "--seed", str(seed),
        "--time-to-teleport", f"{env.time_to_teleport:g}",
        "--no-step-log", "true",
        "--duration-log.disable", "true",
    ]  # fmt: skip
    if env.route_files:
        cmd += ["-r", ",".join(str(p) for p in env.route_files)]
    if env.additional_files:
        cmd += ["-a", ",".join(str(p) for p in env.additional_files)]
    if not env.sumo_warnings:
        cmd += ["--no-warnings", "true"]
    return [*cmd, *env.sumo_args]
