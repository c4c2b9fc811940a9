"""The RL routing agent: how much guidance to give at the zone's diversion points (issue 8).

Guidance (:class:`~roadtwin.agents.routing.ForecastGuidance`) routes every connected vehicle on the
twin's forecast edge travel times. Where an incident closes lanes, sending every guided vehicle onto
the same alternative can make it worse than not guiding at all. The agent decides, every ``decision_s``
seconds and for each of the zone's ``k`` diversion points (:func:`diversion_points`), which share of the
connected vehicles on or approaching that point guidance may re-route during the next interval: a
level in {0, 0.5, 1}. Vehicles with no diversion point ahead are guided as usual
(``default_level``), so levels of 1 everywhere are exactly plain guidance.

- :class:`DiversionGuidance`: :class:`~roadtwin.agents.routing.ForecastGuidance` with one guidance level
  per diversion point (its ``_wants_route`` hook gates each due vehicle), and the agent's observation
  (:meth:`DiversionGuidance.observe`).
- :class:`RoutingEnv` (Gymnasium id ``roadtwin/Routing-v0``): one episode is one SUMO run of a scenario
  window with :class:`DiversionGuidance` underneath; actions ``MultiDiscrete([3] * k)``.
- :class:`RLRouting` (``rl-routing:PATH``): a policy trained by ``roadtwin agents train --task routing``
  driving the same machinery in any run.

**Observation** (``Box(0, 1)``, float32): per diversion point, its edge then up to ``max_out`` of the
road edges leaving the junction it leads into (zeros where a junction has fewer), each as
``[halting / capacity, vehicles / capacity, mean speed / speed limit]`` (capacity = lanes x length /
7.5 m; an empty edge has speed ratio 1); then the time of day as a fraction of 24 h.

**Reward**: minus the vehicle-seconds spent in the network or waiting to be inserted (SUMO's pending
vehicles: departure time passed, entry full) during the interval, divided by the interval's length and
``reward_scale`` (vehicles): about -1 for a zone holding ``reward_scale`` vehicles. Unlike
``simulation.getMinExpectedNumber()`` it leaves out vehicles loaded ahead of their departure time.

Importing this module imports neither torch nor stable-baselines3; Gymnasium is needed only by
:class:`RoutingEnv`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from roadtwin import toolchain
from roadtwin.agents.routing import (
    _HALTING,
    _MEAN_SPEED,
    _VEH_NUMBER,
    ForecastGuidance,
    RoadEdge,
    register_router,
    road_edges,
    unit_hash,
)
from roadtwin.errors import ConfigError, InputError, MissingExtraError, RoadTwinError, SimulationError
from roadtwin.sim.backend import BACKENDS, DEFAULT_BACKEND, Backend, start

if TYPE_CHECKING:
    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.inputs import SimInputs

try:
    import gymnasium
    from gymnasium import spaces
except ImportError:  # pragma: no cover - depends on the environment
    gymnasium = None  # type: ignore[assignment]

__all__ = [
    "ENV_ID",
    "LEVELS",
    "DiversionGuidance",
    "RLRouting",
    "RoutingEnv",
    "RoutingPolicy",
    "diversion_points",
    "find_routing_policy",
]

ENV_ID = "roadtwin/Routing-v0"

#: The guidance levels an action chooses from (action ``a`` means ``LEVELS[a]``).
LEVELS = (0.0, 0.5, 1.0)

#: Seconds between two calls of the guidance underneath (:class:`ForecastGuidance`'s tick).
GUIDANCE_TICK_S = 10.0


PathLike = str | os.PathLike[str]


# --- diversion points ----------------------------------------------------------------------------------


def _net_edges(net: Any) -> tuple[dict[str, RoadEdge], dict[str, list[str]]]:
    """Road edges of a sumolib network, and each node's outgoing road edges."""
    edges: dict[str, RoadEdge] = {}
    for edge in net.getEdges():
        if edge.getID().startswith(":") or edge.getFunction() not in ("", "normal"):
            continue
        usable = [ln for ln in edge.getLanes() if ln.allows("passenger")]
        if not usable:
            continue  # footpaths, cycleways
        signalised = any(c.getTLSID() for conns in edge.getOutgoing().values() for c in conns)
        edges[edge.getID()] = RoadEdge(
            id=edge.getID(),
            lanes=len(usable),
            length=float(usable[0].getLength()),
            speed=max(float(ln.getSpeed()) for ln in usable),
            to_node=edge.getToNode().getID(),
            signalised=signalised,
        )
    out: dict[str, list[str]] = {}
    for e in edges.values():
        out.setdefault(net.getEdge(e.id).getFromNode().getID(), []).append(e.id)
    return edges, out


def _road_edges(conn_or_net: Any) -> tuple[dict[str, RoadEdge], dict[str, list[str]]]:
    if hasattr(conn_or_net, "trafficlight") and hasattr(conn_or_net, "edge"):
        return road_edges(conn_or_net)
    if isinstance(conn_or_net, str | os.PathLike):
        path = Path(conn_or_net)
        if not path.is_file():
            raise InputError(path=path, field=None, expected="a SUMO network file (.net.xml)")
        toolchain.ensure_sumo()
        import sumolib

        conn_or_net = sumolib.net.readNet(str(path))
    return _net_edges(conn_or_net)


def _rank(edges: dict[str, RoadEdge], ids: list[str]) -> list[str]:
    """``ids`` by lanes x length, longest first, ties by id (stable whatever the source)."""
    return sorted(ids, key=lambda e: (-round(edges[e].lanes * edges[e].length, 1), e))


def diversion_points(conn_or_net: Any, *, k: int) -> list[str]:
    """The zone's ``k`` diversion points: the approaches where a driver can still choose a way round.

    A diversion point is a road edge (a lane open to cars; internal edges excluded) whose connections
    a traffic light controls, leading into a junction with at least three outgoing road edges: left,
    straight and right of a four-arm junction, or a T junction's two arms and the way back. They are
    ranked by lanes x length, the road space in which vehicles queue and so the approaches where a
    route choice moves the most vehicles (arterials before side streets), ties broken by edge id.

    Parameters
    ----------
    conn_or_net
        A sumolib network, the path of a ``.net.xml`` file or a running simulation's TraCI API
        (``session.conn``); all three give the same points.
    k
        How many points; fewer when the network has fewer.

    Returns
    -------
    list of str
        Edge ids, best first.
    """
    if k < 1:
        raise ConfigError(path=None, field="k", expected="at least 1 diversion point", got=k)
    edges, out = _road_edges(conn_or_net)
    points = [e.id for e in edges.values() if e.signalised and len(out.get(e.to_node, ())) >= 3]
    return _rank(edges, points)[:k]


# --- guidance with levels ------------------------------------------------------------------------------


class DiversionGuidance(ForecastGuidance):
    """Forecast guidance with one guidance level per diversion point.

    A due connected vehicle whose remaining route reaches a diversion point within ``lookahead`` edges
    (its current edge included) is re-routed with the probability of the nearest such point's level: a
    stable draw per vehicle and decision interval, so that level 0.5 guides half of them. Others are
    guided with ``default_level``.

    Parameters
    ----------
    points
        The diversion points (edge ids), in the order of the levels.
    max_out
        Outgoing edges of each point observed (:meth:`observe`).
    lookahead
        How many edges ahead of its current one a vehicle counts as approaching a point.
    default_level
        Guidance level of vehicles approaching no diversion point.
    **guidance
        Options of :class:`~roadtwin.agents.routing.ForecastGuidance` (``penetration``, ``seed``,
        ``update_s`` ...).
    """

    def __init__(
        self,
        *,
        points: Sequence[str],
        max_out: int = 4,
        lookahead: int = 3,
        default_level: float = 1.0,
        **guidance: Any,
    ) -> None:
        if not points or max_out < 1 or lookahead < 0 or not 0.0 <= default_level <= 1.0:
            raise ConfigError(
                path=None,
                field="points",
                expected="at least one diversion point, max_out >= 1, lookahead >= 0, default_level in [0, 1]",
                got={"points": list(points), "max_out": max_out, "lookahead": lookahead},
            )
        super().__init__(**guidance)
        self.points: list[str] = list(points)
        self.max_out = int(max_out)
        self.lookahead = int(lookahead)
        self.default_level = float(default_level)
        self.levels = np.ones(len(self.points))
        self._interval = 0
        self._point_index = {p: i for i, p in enumerate(self.points)}
        self._obs_edges: list[str] = []
        self._obs_slots = np.zeros(0, dtype=np.intp)
        self._capacity = np.ones(0)
        self._free = np.ones(0)

    @property
    def obs_size(self) -> int:
        """Length of the observation."""
        return len(self.points) * 3 * (1 + self.max_out) + 1

    def set_levels(self, levels: Sequence[float] | np.ndarray) -> None:
        """Set every point's level (in [0, 1]) for the next interval; every vehicle draws anew."""
        values = np.clip(np.asarray(levels, dtype=float).reshape(-1), 0.0, 1.0)
        if values.shape != (len(self.points),):
            raise ConfigError(
                path=None,
                field="levels",
                expected=f"{len(self.points)} levels, one per point",
                got=values.tolist(),
            )
        self.levels = values
        self._interval += 1

    def start(self, session: SumoSession) -> None:
        """Start guidance and lay out the observed edges on the live network."""
        super().start(session)
        conn = session.conn
        edges, out = self.road
        missing = [p for p in self.points if p not in edges]
        if missing:
            raise ConfigError(
                path=None,
                field="points",
                expected="road edges of the simulated network (the policy was trained on another one)",
                got=missing,
            )
        observed: list[str] = []
        slots: list[int] = []
        width = 1 + self.max_out
        for i, p in enumerate(self.points):
            leaving = _rank(edges, list(out.get(edges[p].to_node, ())))[: self.max_out]
            for j, e in enumerate([p, *leaving]):
                observed.append(e)
                slots.append(i * width + j)
        self._obs_edges = observed
        self._obs_slots = np.asarray(slots, dtype=np.intp)
        self._capacity = np.array([max(edges[e].lanes * edges[e].length / 7.5, 1.0) for e in observed])
        self._free = np.array([max(edges[e].speed, 0.1) for e in observed])
        for e in set(observed) - set(self._index):  # guidance subscribed every road edge already
            conn.edge.subscribe(e, (_VEH_NUMBER, _MEAN_SPEED, _HALTING))
        self.levels = np.ones(len(self.points))
        self._interval = 0

    def observe(self, session: SumoSession) -> np.ndarray:
        """The agent's observation now (module docstring), float32 in [0, 1]."""
        conn = session.conn
        n = len(self._obs_edges)
        halt, veh, ratio = np.zeros(n), np.zeros(n), np.ones(n)
        for i, e in enumerate(self._obs_edges):
            row = conn.edge.getSubscriptionResults(e)
            if row:
                veh[i] = row.get(_VEH_NUMBER, 0)
                halt[i] = row.get(_HALTING, 0)
                if veh[i] > 0:
                    ratio[i] = max(row.get(_MEAN_SPEED, 0.0), 0.0) / self._free[i]
        grid = np.zeros((len(self.points) * (1 + self.max_out), 3))
        grid[self._obs_slots, 0] = halt / self._capacity
        grid[self._obs_slots, 1] = veh / self._capacity
        grid[self._obs_slots, 2] = ratio
        day = (session.time % 86400.0) / 86400.0
        return np.clip(np.concatenate([grid.ravel(), [day]]), 0.0, 1.0).astype(np.float32)

    def _wants_route(self, conn: Any, vid: str, now: float) -> bool:
        try:
            route = conn.vehicle.getRoute(vid)
            idx = max(int(conn.vehicle.getRouteIndex(vid)), 0)
        except Exception:  # left the network between the listing and now
            return False
        level = self.default_level
        for edge in route[idx : idx + 1 + self.lookahead]:
            i = self._point_index.get(edge)
            if i is not None:
                level = float(self.levels[i])
                break
        if level >= 1.0:
            return True
        if level <= 0.0:
            return False
        return unit_hash(self.seed, vid, self._interval) < level


# --- the environment -----------------------------------------------------------------------------------


def _paths(value: PathLike | Sequence[PathLike] | None, field: str) -> tuple[Path, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str | os.PathLike) else list(value)
    paths = tuple(Path(p) for p in items)
    for p in paths:
        if not p.is_file():
            raise InputError(path=p, field=field, expected="an existing file", got=str(p))
    return paths


_EnvBase: Any = gymnasium.Env if gymnasium is not None else object


class RoutingEnv(_EnvBase):  # type: ignore[misc]
    """Guidance levels at the diversion points as a Gymnasium environment (module docstring).

    Parameters
    ----------
    net_file, route_files, additional_files
        SUMO's inputs (a scenario's, e.g. from :func:`~roadtwin.agents.scenarios.resolve_scenario`).
    begin, end
        The simulated window (s); an episode ends (truncated) at ``end``.
    k
        Diversion points (:func:`diversion_points`); fewer when the network has fewer.
    points
        The diversion points themselves (default: the ``k`` best of the network).
    decision_s
        Seconds between two decisions, a multiple of the guidance's 10 s tick.
    penetration
        Share of connected vehicles (they follow guidance).
    max_out, lookahead, default_level
        See :class:`DiversionGuidance`.
    reward_scale
        Vehicles: the reward is minus the mean number of vehicles in the network or waiting to enter,
        divided by this.
    guidance
        Further :class:`~roadtwin.agents.routing.ForecastGuidance` options (``update_s``, ``min_gain`` ...).
    sumo_args
        Extra ``sumo`` options (a scenario's step length, pedestrian model ...).
    backend
        ``"libsumo"`` (default; one simulation per process) or ``"traci"``.
    time_to_teleport
        SUMO's ``--time-to-teleport``; ``-1`` (default) disables teleporting.
    seed
        Seed of the first reset when ``reset`` gets none; each reset draws a new SUMO seed.
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
        begin: float,
        end: float,
        additional_files: PathLike | Sequence[PathLike] | None = None,
        k: int = 8,
        points: Sequence[str] | None = None,
        decision_s: float = 120.0,
        penetration: float = 0.3,
        max_out: int = 4,
        lookahead: int = 3,
        default_level: float = 1.0,
        reward_scale: float = 500.0,
        guidance: dict[str, Any] | None = None,
        sumo_args: Sequence[str] = (),
        backend: Backend = DEFAULT_BACKEND,
        time_to_teleport: float = -1.0,
        seed: int | None = None,
        render_mode: str | None = None,
        sumo_warnings: bool = False,
    ) -> None:
        if gymnasium is None:  # pragma: no cover - depends on the environment
            raise MissingExtraError(package="gymnasium", extra="rl")
        if render_mode is not None:
            raise ConfigError(
                path=None, field="render_mode", expected="None (SUMO runs headless)", got=render_mode
            )
        if not end > begin:
            raise ConfigError(
                path=None, field="end", expected=f"an end time after begin ({begin:g} s)", got=end
            )
        ticks = decision_s / GUIDANCE_TICK_S
        if decision_s <= 0 or abs(ticks - round(ticks)) > 1e-9:
            raise ConfigError(
                path=None,
                field="decision_s",
                expected=f"a positive multiple of the guidance tick ({GUIDANCE_TICK_S:g} s)",
                got=decision_s,
            )
        if backend not in BACKENDS:
            raise ConfigError(path=None, field="backend", expected=f"one of {BACKENDS}", got=backend)
        if reward_scale <= 0:
            raise ConfigError(
                path=None, field="reward_scale", expected="a positive number of vehicles", got=reward_scale
            )
        self.render_mode = render_mode
        self.net_file = _paths(net_file, "net_file")[0]
        self.route_files = _paths(route_files, "route_files")
        self.additional_files = _paths(additional_files, "additional_files")
        self.begin, self.end = float(begin), float(end)
        self.decision_s = float(decision_s)
        self.reward_scale = float(reward_scale)
        self.sumo_args = tuple(str(a) for a in sumo_args)
        self.backend: Backend = backend
        self.time_to_teleport = float(time_to_teleport)
        self.sumo_warnings = bool(sumo_warnings)
        self.points = list(points) if points is not None else diversion_points(self.net_file, k=k)
        if not self.points:
            raise ConfigError(
                path=self.net_file,
                field="k",
                expected="a network with diversion points (signalised approaches to junctions of 3+ exits)",
                got=0,
            )
        self.router = DiversionGuidance(
            points=self.points,
            max_out=max_out,
            lookahead=lookahead,
            default_level=default_level,
            penetration=penetration,
            **(guidance or {}),
        )
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.router.obs_size,), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete([len(LEVELS)] * len(self.points))
        self.session: SumoSession | None = None
        self._seed = seed
        self._act_due = False
        self._label = f"roadtwin-routing-{os.getpid()}-{id(self):x}"

    def command(self, seed: int) -> list[str]:
        """The ``sumo`` command line of an episode with SUMO seed ``seed``."""
        from roadtwin.sim.env import episode_command

        return episode_command(self, seed=seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Restart SUMO with a new seed; return the observation at the window's start."""
        # The constructor's seed stands for the first reset's; an explicit seed supersedes it for good.
        seed, self._seed = (self._seed if seed is None else seed), None
        super().reset(seed=seed)
        self.close()
        if self.backend == "libsumo" and toolchain.import_libsumo().simulation.isLoaded():
            raise SimulationError(
                "libsumo runs one simulation per process and another one is open: close it, "
                'use backend="traci", or run environments in separate processes'
            )
        sumo_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.session = start(self.command(sumo_seed), backend=self.backend, label=self._label)
        try:
            self.router.seed = sumo_seed  # the connected vehicles differ from episode to episode
            self.router.start(self.session)
            obs = self.router.observe(self.session)
        except BaseException as exc:
            self.close()
            raise _simulation_error(exc) from exc
        self._act_due = False
        return obs, {"time": self.session.time, "points": list(self.points)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Set the levels and run to the next decision (the window's end at the latest)."""
        session = self.session
        if session is None:
            raise SimulationError("the episode is over (or never started): call reset() first")
        action = np.asarray(action, dtype=np.intp).reshape(-1)
        if action.shape != (len(self.points),) or np.any(action < 0) or np.any(action >= len(LEVELS)):
            raise ConfigError(
                path=None,
                field="action",
                expected=f"{len(self.points)} choices in 0..{len(LEVELS) - 1}",
                got=action.tolist(),
            )
        levels = np.asarray(LEVELS)[action]
        conn = session.conn
        try:
            reroutes = self.router.reroutes
            self.router.set_levels(levels)
            if self._act_due:  # as a run does: the router acts at the decision time, after the decision
                self.router.act(session)
            t0 = session.time
            until = min(t0 + self.decision_s, self.end)
            dt = float(conn.simulation.getDeltaT())
            vehicle_s = pending_s = 0.0
            t = t0
            next_tick = t0 + GUIDANCE_TICK_S
            while t < until - 1e-9:
                session.step(min(t + dt, until))
                t = session.time
                vehicle_s += conn.vehicle.getIDCount() * dt
                pending_s += len(conn.simulation.getPendingVehicles()) * dt
                if t + 1e-9 >= next_tick and t < until - 1e-9:
                    self.router.act(session)
                    next_tick += GUIDANCE_TICK_S
            obs = self.router.observe(session)
        except BaseException as exc:
            self.close()
            raise _simulation_error(exc) from exc
        span = max(t - t0, dt)
        reward = -(vehicle_s + pending_s) / span / self.reward_scale
        done = t >= self.end - 1e-6
        self._act_due = not done
        info = {
            "time": t,
            "vehicles": vehicle_s / span,
            "pending": pending_s / span,
            "reroutes": self.router.reroutes - reroutes,
            "levels": levels.tolist(),
        }
        if done:
            self.close()
        return obs, float(reward), False, done, info

    def render(self) -> None:
        """Nothing to render: SUMO runs headless."""
        return None

    def close(self) -> None:
        """Close SUMO; safe to call twice."""
        if self.session is not None:
            session, self.session = self.session, None
            with contextlib.suppress(Exception):
                self.router.close()
            session.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have taken SUMO already
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["session"] = None  # a copy starts its own SUMO on reset
        return state


def _simulation_error(exc: BaseException) -> BaseException:
    if isinstance(exc, RoadTwinError | KeyboardInterrupt | SystemExit):
        return exc
    return SimulationError(f"SUMO failed during the episode: {exc}")


# --- the trained agent as a routing controller ---------------------------------------------------------


@dataclass(frozen=True)
class RoutingPolicy:
    """A routing policy file and the ``policy`` section of its training run's ``config.yaml``."""

    model_path: Path
    run_dir: Path
    spec: dict[str, Any]


def find_routing_policy(source: PathLike) -> RoutingPolicy:
    """Locate the model of ``source``: a training run folder of ``agents train --task routing`` (its
    ``best/best_model.zip``, else ``final_model.zip``, else its last checkpoint) or a model ``.zip``
    inside one.

    Raises
    ------
    InputError
        ``source`` does not exist, is not such a folder or model, or the run trained signals.
    """
    from roadtwin.agents.train import latest_checkpoint, load_run_config

    path = Path(source)
    expected = "a training run folder of agents train --task routing, or a model .zip inside one"
    if path.is_dir():
        run_dir = path
        model: Path | None = next(
            (p for p in (run_dir / "best" / "best_model.zip", run_dir / "final_model.zip") if p.is_file()),
            None,
        )
        if model is None:
            last = latest_checkpoint(run_dir)
            model = last[0] if last is not None else None
        if model is None:
            raise InputError(path=run_dir, field=None, expected="a training run with a saved model")
    elif path.is_file() and path.suffix == ".zip":
        model = path
        run_dir = next(
            (p for p in (path.parent, path.parent.parent) if (p / "config.yaml").is_file()), path.parent
        )
    else:
        raise InputError(path=path, field="source", expected=expected)
    config = load_run_config(run_dir)
    spec = dict(config["policy"])
    if spec.get("task") != "routing":
        raise InputError(
            path=run_dir / "config.yaml", field="policy.task", expected="a routing policy (task: routing)",
            got=spec.get("task", "signals"),
        )  # fmt: skip
    return RoutingPolicy(model_path=model, run_dir=run_dir, spec=spec)


@register_router
class RLRouting(DiversionGuidance):
    """Guidance levels at the diversion points chosen by a policy from ``agents train --task routing``.

    Every ``decision_s`` seconds of the training (from the run's start) it builds the environment's
    observation on the live run, asks the policy for the levels and applies them through
    :class:`DiversionGuidance` with the training's guidance options, so the policy sees and acts as
    in :class:`RoutingEnv`.

    Parameters
    ----------
    penetration
        Share of connected vehicles (need not be the training's).
    seed
        Seed of the connected-vehicle draw.
    source
        A training run folder or a model ``.zip`` inside one.
    deterministic
        Take the policy's most likely levels (default) rather than sampling.
    """

    name: ClassVar[str] = "rl-routing"

    def __init__(
        self,
        *,
        penetration: float = 0.0,
        seed: int = 0,
        source: PathLike,
        deterministic: bool = True,
    ) -> None:
        self.policy = find_routing_policy(source)
        spec = self.policy.spec
        super().__init__(
            points=list(spec["points"]),
            max_out=int(spec["max_out"]),
            lookahead=int(spec["lookahead"]),
            default_level=float(spec["default_level"]),
            penetration=penetration,
            seed=seed,
            **dict(spec.get("guidance") or {}),
        )
        self.options.update(source=str(source), deterministic=bool(deterministic))
        self.decision_s = float(spec["decision_s"])
        self.model = self._load_model()
        self._next_decision = math.inf
        #: ``(time, observation, levels)`` of every decision of the current run.
        self.decisions: list[tuple[float, np.ndarray, np.ndarray]] = []

    def _load_model(self) -> Any:
        from roadtwin.errors import require

        sb3 = require("stable_baselines3", extra="rl")
        path = self.policy.model_path
        try:
            model = sb3.PPO.load(path, device="cpu")
        except Exception as exc:
            raise InputError(
                path=path, field=None, expected="a readable PPO model", got=type(exc).__name__
            ) from None
        n_obs = int(model.observation_space.shape[0])
        nvec = [int(n) for n in getattr(model.action_space, "nvec", [])]
        if n_obs != self.obs_size or nvec != [len(LEVELS)] * len(self.points):
            raise ConfigError(
                path=path,
                field="observation",
                expected=f"a model for {self.obs_size} observations and {len(self.points)} points",
                got={"observations": n_obs, "actions": nvec},
            )
        return model

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Inputs unchanged (the points are the training's)."""
        return inputs

    def start(self, session: SumoSession) -> None:
        """Start guidance, then take the first decision (as the environment's ``reset``)."""
        super().start(session)
        self.decisions = []
        self._decide(session)
        self._next_decision = session.time + self.decision_s

    def act(self, session: SumoSession) -> None:
        """Decide when a decision is due, then guide."""
        now = session.time
        if now + 1e-6 >= self._next_decision:
            self._decide(session)
            self._next_decision += self.decision_s
        super().act(session)

    def _decide(self, session: SumoSession) -> None:
        obs = self.observe(session)
        action, _ = self.model.predict(obs, deterministic=bool(self.options["deterministic"]))
        levels = np.asarray(LEVELS)[
            np.clip(np.asarray(action, dtype=np.intp).reshape(-1), 0, len(LEVELS) - 1)
        ]
        self.set_levels(levels)
        self.decisions.append((session.time, obs, levels))

    def close(self) -> None:
        """Forget the run (the model stays loaded for the next one)."""
        super().close()
        self._next_decision = math.inf


if gymnasium is not None and ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="roadtwin.agents.routing_rl:RoutingEnv")
