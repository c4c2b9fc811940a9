"""Routing controllers behind one interface: none, SUMO's rerouting device, forecast-aware guidance.

A routing controller decides the routes of the *connected* vehicles: a share ``penetration`` of all
vehicles, chosen by a hash of the seed and the vehicle id (:func:`is_connected`), so that the same vehicles
are connected whichever controller runs and whatever the signals do. Every routing controller satisfies
:class:`roadtwin.sim.control.SignalControl` (``prepare``/``start``/``act``/``close``), so a run takes it as
it takes a signal controller; :class:`~roadtwin.agents.combined.CombinedControl` runs one of each together.

- ``none`` (:class:`NoRouting`): every vehicle keeps the route it departed with.
- ``rerouting`` (:class:`ReroutingDevice`): SUMO's own rerouting device on the connected vehicles: each
  re-routes every ``period_s`` on the travel times SUMO measures on every edge (all vehicles, smoothed over
  ``adaptation_s``). The device sees the whole network *now*; it knows nothing of the next minutes, and
  every equipped vehicle picks the same fastest route.
- ``guidance`` (:class:`ForecastGuidance`): a central service that knows what the twin knows. Every
  ``update_s`` it reads the roadside sensors of every edge (vehicles, halting vehicles, mean speed: the
  loops and cameras of ``roadtwin.twin``), estimates each edge's travel time now (free-flow time plus the
  time its queue needs to discharge), forecasts it 15, 30 and 60 minutes ahead
  (:class:`EdgeTravelTimeForecaster`), and loads the forecasts into SUMO as time-dependent edge weights
  (``edge.adaptTraveltime`` with begin and end), so that a route is costed with each edge's travel time *at
  the time the vehicle will reach it*. Connected vehicles are routed on these weights when they enter and
  again every ``reroute_period_s``; a new route is kept only when it saves ``min_gain`` of the old one's
  cost. Routes are costed system-optimally: an edge costs its free-flow time plus ``1 + externality`` times
  its expected delay, the delay a vehicle suffers and (about as much again per unit of weight) the delay it
  imposes on the vehicles queued behind it, so connected vehicles keep out of the queues that hold up
  everyone else rather than just taking the fastest route for themselves. Every vehicle sent onto an edge
  raises that edge's expected queue for the vehicles routed after it (``load_per_vehicle``), so guidance
  spreads vehicles over the alternatives instead of herding them all onto the same one, as the device does.

The RL routing agent (``rl-routing:PATH``) sets the guidance share at the zone's diversion points; it lives
in :mod:`roadtwin.agents.routing_rl` and registers itself here.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import numpy as np

from roadtwin.agents.base import Controller
from roadtwin.errors import ConfigError
from roadtwin.sim.incidents import INCIDENT_TYPE

if TYPE_CHECKING:
    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.inputs import SimInputs

__all__ = [
    "PENETRATIONS",
    "ROUTERS",
    "EdgeForecaster",
    "EdgeTravelTimeForecaster",
    "ForecastGuidance",
    "NoRouting",
    "ReroutingDevice",
    "RoadEdge",
    "RoutingController",
    "is_connected",
    "make_router",
    "register_router",
    "road_edges",
    "router_names",
    "unit_hash",
]

#: The connected-vehicle penetrations of the routing benchmark (issue 8).
PENETRATIONS = (0.0, 0.1, 0.3, 0.6)

R = TypeVar("R", bound="type[RoutingController]")

#: Registered routing controller classes by name.
ROUTERS: dict[str, type[RoutingController]] = {}

_VEH_NUMBER = 0x10  # LAST_STEP_VEHICLE_NUMBER
_MEAN_SPEED = 0x11  # LAST_STEP_MEAN_SPEED
_HALTING = 0x14  # LAST_STEP_VEHICLE_HALTING_NUMBER


def is_connected(vehicle_id: str, *, penetration: float, seed: int) -> bool:
    """Whether ``vehicle_id`` is a connected vehicle at this penetration: a stable hash of (seed, id).

    The connected vehicles at a lower penetration are a subset of those at a higher one.
    """
    if penetration <= 0:
        return False
    if penetration >= 1:
        return True
    return unit_hash(seed, vehicle_id) < penetration


def unit_hash(*parts: object) -> float:
    """A stable draw in [0, 1) from ``parts`` (joined with ``/``): the same in every process and run."""
    digest = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class RoadEdge:
    """A road edge of the simulated network, as routing sees it."""

    id: str
    lanes: int  # lanes open to passenger cars
    length: float
    speed: float  # the fastest usable lane's limit
    to_node: str
    signalised: bool  # a traffic light controls its connections


def road_edges(conn: Any) -> tuple[dict[str, RoadEdge], dict[str, list[str]]]:
    """Road edges of a running simulation (the TraCI API, in its edge order), and each junction's
    outgoing road edges. Internal edges and edges with no lane open to cars (footpaths) are left out."""
    controlled: set[str] = set()
    for tls in conn.trafficlight.getIDList():
        for links in conn.trafficlight.getControlledLinks(tls):
            for link in links:
                if link and not link[0].startswith(":"):
                    controlled.add(conn.lane.getEdgeID(link[0]))
    edges: dict[str, RoadEdge] = {}
    out: dict[str, list[str]] = {}
    for eid in conn.edge.getIDList():
        if eid.startswith(":"):
            continue
        lanes = [f"{eid}_{i}" for i in range(conn.edge.getLaneNumber(eid))]
        usable = [
            ln for ln in lanes if not conn.lane.getAllowed(ln) or "passenger" in conn.lane.getAllowed(ln)
        ]
        if not usable:
            continue
        edges[eid] = RoadEdge(
            id=eid,
            lanes=len(usable),
            length=float(conn.lane.getLength(usable[0])),
            speed=max(float(conn.lane.getMaxSpeed(ln)) for ln in usable),
            to_node=conn.edge.getToJunction(eid),
            signalised=eid in controlled,
        )
        out.setdefault(conn.edge.getFromJunction(eid), []).append(eid)
    return edges, out


class RoutingController(Controller):
    """Base class of routing controllers.

    Parameters
    ----------
    penetration
        Share of vehicles that are connected and follow this controller, in [0, 1].
    seed
        Seed of the connected-vehicle draw (:func:`is_connected`); runs set it to the run's seed.
    **options
        Controller options (typed keyword arguments in subclasses), saved into each run's ``config.yaml``.
    """

    name: ClassVar[str] = ""
    decision_interval_s: float | None = None

    def __init__(self, *, penetration: float = 0.0, seed: int = 0, **options: Any) -> None:
        if not 0.0 <= penetration <= 1.0:
            raise ConfigError(
                path=None, field="penetration", expected="a share in [0, 1] (0.3 for 30 %)", got=penetration
            )
        self.penetration = float(penetration)
        self.seed = int(seed)
        super().__init__(penetration=self.penetration, seed=self.seed, **options)
        #: Number of route changes made (connected vehicles sent onto a different route).
        self.reroutes = 0

    @property
    def label(self) -> str:
        """``name@P%`` (``none`` alone): the routing part of a run's controller name."""
        if self.name == "none" or self.penetration <= 0:
            return "none"
        return f"{self.name}@{self.penetration * 100:g}%"

    def connected(self, vehicle_id: str) -> bool:
        """Whether this vehicle follows the controller."""
        return is_connected(vehicle_id, penetration=self.penetration, seed=self.seed)


def register_router(cls: R) -> R:
    """Class decorator: register a routing controller under its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name")
    ROUTERS[cls.name] = cls
    return cls


def _load_builtin() -> None:
    import importlib

    try:
        importlib.import_module("roadtwin.agents.routing_rl")
    except ModuleNotFoundError as exc:
        if exc.name != "roadtwin.agents.routing_rl":
            raise


def router_names() -> list[str]:
    """Names of the registered routing controllers."""
    _load_builtin()
    return sorted(ROUTERS)


def make_router(spec: str, *, penetration: float = 0.0, seed: int = 0, **options: Any) -> RoutingController:
    """Build a routing controller from its spec: ``NAME`` or ``NAME:ARG`` (``rl-routing:runs/x``).

    The part after ``:`` is passed as the ``source`` option (a trained policy).
    """
    _load_builtin()
    name, _, arg = spec.partition(":")
    cls = ROUTERS.get(name)
    if cls is None:
        raise ConfigError(
            path=None, field="routing", expected=f"one of {', '.join(sorted(ROUTERS))}", got=spec
        )
    if arg:
        options["source"] = arg
    return cls(penetration=penetration, seed=seed, **options)


@register_router
class NoRouting(RoutingController):
    """Fixed routes: every vehicle keeps the route it departed with."""

    name: ClassVar[str] = "none"


@register_router
class ReroutingDevice(RoutingController):
    """SUMO's rerouting device (``device.rerouting``) on the connected vehicles.

    Parameters
    ----------
    period_s
        Seconds between two re-routings of an equipped vehicle (SUMO's ``--device.rerouting.period``).
    adaptation_interval_s, adaptation_steps
        SUMO measures every edge's travel time every ``adaptation_interval_s`` and averages the last
        ``adaptation_steps`` measurements.
    """

    name: ClassVar[str] = "rerouting"

    def __init__(
        self,
        *,
        penetration: float = 0.0,
        seed: int = 0,
        period_s: float = 60.0,
        adaptation_interval_s: float = 10.0,
        adaptation_steps: int = 18,
    ) -> None:
        if period_s <= 0 or adaptation_interval_s <= 0 or adaptation_steps < 1:
            raise ConfigError(
                path=None,
                field="period_s",
                expected="positive period and adaptation interval, at least 1 adaptation step",
                got=(period_s, adaptation_interval_s, adaptation_steps),
            )
        super().__init__(
            penetration=penetration,
            seed=seed,
            period_s=period_s,
            adaptation_interval_s=adaptation_interval_s,
            adaptation_steps=adaptation_steps,
        )
        self.equipped: list[str] = []

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Give the connected vehicles of the route files SUMO's rerouting device."""
        from dataclasses import replace

        from roadtwin.sim.metrics import read_schedule

        if self.penetration <= 0:
            return inputs
        ids = [v for v in read_schedule(inputs.route_files).index if self.connected(str(v))]
        self.equipped = ids
        if not ids:
            return inputs
        args = [
            "--device.rerouting.explicit", ",".join(ids),
            "--device.rerouting.period", f"{self.options['period_s']:g}",
            "--device.rerouting.adaptation-interval", f"{self.options['adaptation_interval_s']:g}",
            "--device.rerouting.adaptation-steps", str(int(self.options["adaptation_steps"])),
        ]  # fmt: skip
        return replace(inputs, extra_args=(*inputs.extra_args, *args))


class EdgeForecaster(Protocol):
    """What guidance needs from the twin: edge travel times now and ahead.

    ``observe`` is called every update with the sensors' readings of every edge (arrays in the order of
    ``edges`` given to ``reset``); ``forecast`` returns travel times (s) with one row per horizon.
    """

    def reset(self, *, edges: list[str], length_m: np.ndarray, free_speed_ms: np.ndarray,
              lanes: np.ndarray) -> None: ...  # fmt: skip

    def observe(self, *, time_s: float, vehicles: np.ndarray, halting: np.ndarray,
                mean_speed_ms: np.ndarray) -> None: ...  # fmt: skip

    def forecast(self, horizons_s: tuple[float, ...]) -> np.ndarray: ...


class EdgeTravelTimeForecaster:
    """Edge travel times from roadside sensor readings, now and ``h`` seconds ahead.

    An edge's travel time is its free-flow time (at the measured mean speed of moving traffic, never
    faster than the limit) plus the time its queue needs to discharge: ``halting / (lanes * saturation *
    green_share)``. The queue ahead is the queue now plus its trend (smoothed change per second) times the
    horizon, damped (``trend_horizon_s``: trends fade rather than run on for an hour) and bounded by what
    the edge can hold. A queue that shrinks is forecast to shrink.

    Parameters
    ----------
    saturation_veh_s
        Discharge of one lane on green (veh/s; 1,800 veh/h).
    green_share
        Share of the time a signalised approach is green.
    smoothing
        Weight of a new reading in the exponential smoothing of queue and trend.
    trend_horizon_s
        The trend's effective reach: a forecast ``h`` ahead extrapolates ``tau * (1 - exp(-h / tau))``.
    """

    def __init__(
        self,
        *,
        saturation_veh_s: float = 0.5,
        green_share: float = 0.45,
        smoothing: float = 0.5,
        trend_horizon_s: float = 900.0,
    ) -> None:
        self.saturation_veh_s = saturation_veh_s
        self.green_share = green_share
        self.smoothing = smoothing
        self.trend_horizon_s = trend_horizon_s
        self._t: float | None = None

    def reset(self, *, edges: list[str], length_m: np.ndarray, free_speed_ms: np.ndarray,
              lanes: np.ndarray) -> None:  # fmt: skip
        """Start over on these edges."""
        self.edges = edges
        self.length = np.asarray(length_m, dtype=float)
        self.free_speed = np.maximum(np.asarray(free_speed_ms, dtype=float), 1.0)
        self.lanes = np.maximum(np.asarray(lanes, dtype=float), 1.0)
        self.capacity = self.length * self.lanes / 7.5
        self.queue = np.zeros(len(edges))
        self.trend = np.zeros(len(edges))
        self.speed = self.free_speed.copy()
        self.crawl = np.zeros(len(edges))
        self._blocked: np.ndarray | None = None
        self._until = np.full(len(edges), -math.inf)
        self._t = None

    def observe(self, *, time_s: float, vehicles: np.ndarray, halting: np.ndarray,
                mean_speed_ms: np.ndarray) -> None:  # fmt: skip
        """Take one reading of every edge."""
        a = self.smoothing
        halting = np.asarray(halting, dtype=float)
        moving = np.asarray(vehicles, dtype=float) - halting
        # Mean speed of the moving vehicles: the edge's mean speed counts halted ones as 0.
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(
                moving > 0, np.asarray(mean_speed_ms) * np.asarray(vehicles) / np.maximum(moving, 1), np.nan
            )
        v = np.clip(np.where(np.isnan(v), self.free_speed, v), 2.0, self.free_speed)
        self.speed = (1 - a) * self.speed + a * v
        # What a camera sees directly: the time to cross the edge at its mean speed (halted vehicles
        # included); on an edge whose discharge is cut (an incident) this exceeds the queue model.
        occupied = np.asarray(vehicles, dtype=float) > 0
        crawl = np.where(occupied, self.length / np.maximum(np.asarray(mean_speed_ms, dtype=float), 0.3), 0.0)
        self.crawl = (1 - a) * self.crawl + a * crawl if self._t is not None else crawl
        if self._t is not None and time_s > self._t:
            slope = (halting - self.queue) / (time_s - self._t)
            self.trend = (1 - a) * self.trend + a * slope
        self.queue = (1 - a) * self.queue + a * halting if self._t is not None else halting.copy()
        self._t = time_s

    def set_incidents(self, *, time_s: float, blocked_lanes: np.ndarray, until_s: np.ndarray) -> None:
        """Lanes blocked on each edge now, and when they clear (s; ``-inf`` where none are)."""
        self._blocked = np.minimum(np.asarray(blocked_lanes, dtype=float), self.lanes - 0.5)
        self._until = np.asarray(until_s, dtype=float)
        self._incident_t = time_s

    def travel_time(self, queue: np.ndarray, *, at_s: float | None = None) -> np.ndarray:
        """Travel time (s) of every edge with this many vehicles queued (at time ``at_s``)."""
        lanes = self.lanes
        if at_s is not None and self._blocked is not None:
            lanes = np.where(at_s < self._until, self.lanes - self._blocked, self.lanes)
        discharge = lanes * self.saturation_veh_s * self.green_share
        model = self.length / self.speed + np.asarray(queue) / discharge
        # Scale the crossing time seen now by how the queue is expected to change.
        with np.errstate(divide="ignore", invalid="ignore"):
            growth = np.where(self.queue > 0, (np.asarray(queue) + 1.0) / (self.queue + 1.0), 1.0)
        return np.maximum(model, self.crawl * growth)

    def forecast(self, horizons_s: tuple[float, ...]) -> np.ndarray:
        """Travel times (s), one row per horizon (0 is now)."""
        tau = self.trend_horizon_s
        rows = []
        for h in horizons_s:
            reach = tau * (1.0 - math.exp(-h / tau)) if h > 0 else 0.0
            q = np.clip(self.queue + self.trend * reach, 0.0, self.capacity)
            at = None if self._t is None else self._t + h
            rows.append(self.travel_time(q, at_s=at))
        return np.vstack(rows)


@register_router
class ForecastGuidance(RoutingController):
    """Route guidance for connected vehicles on the twin's current and forecast edge travel times.

    Parameters
    ----------
    update_s
        Seconds between two sensor readings and weight updates.
    reroute_period_s
        A connected vehicle is re-routed at most this often (it is also routed when it enters).
    horizons_min
        Forecast horizons (minutes); the weights SUMO routes on switch from one horizon to the next halfway
        between them, so a route is costed with each edge's forecast for when the vehicle gets there.
    min_gain
        A new route is kept only when it saves at least this share of the old route's remaining cost.
    load_per_vehicle
        Queued vehicles added to an edge's forecast for each vehicle guidance sends onto it beyond the
        edge's spare capacity (half an update interval's discharge, less what its queue fills); 0 turns
        load spreading off.
    incidents
        Use the incident feed: a lane blocked by an incident (a vehicle of type ``incident`` standing on
        it, as the roadside cameras report it) takes that lane's share of the edge's discharge away until
        its announced clearance time (the incident's ``end``).
    externality
        Weight of the delay a vehicle imposes on those queued behind it (system-optimal routing): an edge
        costs its free-flow time plus ``1 + externality`` times its expected delay. 0 routes each vehicle
        on its own travel time (user-optimal, like the device).
    externality_fill
        If positive, the externality's weight grows with the share of an edge its queue fills, reaching
        ``externality`` at this share; 0 (default) weighs every edge's delay alike. On the incident scenario
        (seed 1, 30 % connected) 0.2 took fixed-time signals from 415 s to 430 s of mean travel time and
        max-pressure from 339 s to 331 s.
    forecaster
        The edge forecaster (default :class:`EdgeTravelTimeForecaster`).
    """

    name: ClassVar[str] = "guidance"

    def __init__(
        self,
        *,
        penetration: float = 0.0,
        seed: int = 0,
        update_s: float = 60.0,
        reroute_period_s: float = 60.0,
        horizons_min: tuple[float, ...] | list[float] = (0.0, 15.0, 30.0, 60.0),
        min_gain: float = 0.0,
        load_per_vehicle: float = 0.5,
        incidents: bool = True,
        externality: float = 3.0,
        externality_fill: float = 0.0,
        forecaster: EdgeForecaster | None = None,
    ) -> None:
        horizons = tuple(float(h) for h in horizons_min)
        if update_s <= 0 or reroute_period_s <= 0 or not horizons or horizons[0] != 0.0:
            raise ConfigError(
                path=None,
                field="horizons_min",
                expected="positive update_s and reroute_period_s, horizons starting at 0",
                got={"update_s": update_s, "reroute_period_s": reroute_period_s, "horizons_min": horizons},
            )
        super().__init__(
            penetration=penetration,
            seed=seed,
            update_s=update_s,
            reroute_period_s=reroute_period_s,
            horizons_min=list(horizons),
            min_gain=min_gain,
            load_per_vehicle=load_per_vehicle,
            incidents=bool(incidents),
            externality=float(externality),
            externality_fill=float(externality_fill),
        )
        self.decision_interval_s = 10.0
        self._incidents: dict[str, tuple[str, float]] = {}
        self.forecaster: EdgeForecaster = forecaster or EdgeTravelTimeForecaster()
        self._horizons_s = tuple(h * 60.0 for h in horizons)
        self._edges: list[str] = []
        self._index: dict[str, int] = {}
        self._seen: set[str] = set()
        self._last_route: dict[str, float] = {}
        self._next_update = -math.inf
        self._tt = np.zeros((0, 0))
        self._load = np.zeros(0)
        self._discharge = np.zeros(0)
        self._spare = np.zeros(0)
        self.road: tuple[dict[str, RoadEdge], dict[str, list[str]]] = ({}, {})
        self._bounds: list[tuple[float, float]] = []

    # --- life cycle ----------------------------------------------------------------------------------

    def start(self, session: SumoSession) -> None:
        """Find the road edges and subscribe their sensor readings."""
        conn = session.conn
        self.road = road_edges(conn)
        records = list(self.road[0].values())
        edges = [r.id for r in records]
        length = [r.length for r in records]
        speed = [r.speed for r in records]
        lanes = [r.lanes for r in records]
        self._edges = edges
        self._index = {e: i for i, e in enumerate(edges)}
        self.forecaster.reset(
            edges=edges, length_m=np.array(length), free_speed_ms=np.array(speed), lanes=np.array(lanes)
        )
        fc = self.forecaster
        self._discharge = (
            np.asarray(lanes, dtype=float)
            * getattr(fc, "saturation_veh_s", 0.5)
            * getattr(fc, "green_share", 0.45)
        )
        self._load = np.zeros(len(edges))
        self._free_tt = np.asarray(length, dtype=float) / np.maximum(np.asarray(speed, dtype=float), 1.0)
        for edge in edges:
            conn.edge.subscribe(edge, (_VEH_NUMBER, _MEAN_SPEED, _HALTING))
        self._seen = set()
        self._incidents = {}
        self._last_route = {}
        self._next_update = -math.inf

    def act(self, session: SumoSession) -> None:
        """Update the weights when due, then route the connected vehicles that are due."""
        if self.penetration <= 0:
            return
        conn = session.conn
        now = session.time
        running = conn.vehicle.getIDList()
        if now >= self._next_update:
            self._update(conn, now, running=running)
            self._next_update = now + float(self.options["update_s"])
        period = float(self.options["reroute_period_s"])
        for vid in running:
            if vid not in self._seen:
                self._seen.add(vid)
                if self.options["incidents"] and conn.vehicle.getTypeID(vid) == INCIDENT_TYPE:
                    self._incidents[vid] = self._incident(conn, vid)
                    self._next_update = now  # re-cost the network at the next act
                    continue
                if not self.connected(vid):
                    continue
                self._last_route[vid] = -math.inf
            last = self._last_route.get(vid)
            if last is None or now - last < period:
                continue
            if not self._wants_route(conn, vid, now):
                continue
            self._last_route[vid] = now
            self._route(conn, vid, now)

    def _wants_route(self, conn: Any, vid: str, now: float) -> bool:
        """Whether to route this due connected vehicle now; a hook for subclasses (always, here).

        A vehicle turned down stays due and is asked again at the next :meth:`act`.
        """
        return True

    def close(self) -> None:
        """Forget the run's state."""
        self._seen.clear()
        self._last_route.clear()

    # --- weights -------------------------------------------------------------------------------------

    def _update(self, conn: Any, now: float, *, running: Any) -> None:
        res = conn.edge.getAllSubscriptionResults()
        n = len(self._edges)
        veh, halt, speed = np.zeros(n), np.zeros(n), np.zeros(n)
        for i, edge in enumerate(self._edges):
            row = res.get(edge)
            if row:
                veh[i] = row.get(_VEH_NUMBER, 0)
                halt[i] = row.get(_HALTING, 0)
                speed[i] = max(row.get(_MEAN_SPEED, 0.0), 0.0)
        self.forecaster.observe(time_s=now, vehicles=veh, halting=halt, mean_speed_ms=speed)
        fc = self.forecaster
        fill = np.zeros(n)
        if hasattr(fc, "queue") and hasattr(fc, "capacity"):
            fill = np.minimum(np.asarray(fc.queue) / np.maximum(np.asarray(fc.capacity), 1.0), 1.0)
        # Spare capacity until the next update: half an update interval's discharge, less the share of the
        # edge its queue already fills.
        self._spare = 0.5 * self._discharge * float(self.options["update_s"]) * (1.0 - fill)
        if self._incidents and hasattr(self.forecaster, "set_incidents"):
            present = set(running)
            blocked, until = np.zeros(n), np.full(n, -math.inf)
            for vid, (edge, clear_at) in list(self._incidents.items()):
                i = self._index.get(edge)
                if vid not in present or clear_at <= now:
                    del self._incidents[vid]
                elif i is not None:
                    blocked[i] += 1
                    until[i] = max(until[i], clear_at)
            self.forecaster.set_incidents(time_s=now, blocked_lanes=blocked, until_s=until)
        tt = self.forecaster.forecast(self._horizons_s)
        # System-optimal costing: the delay a vehicle adds to the others queued behind it on an edge is about
        # its own queueing delay again; ``externality`` weighs it into the cost guidance routes on.
        # With ``externality_fill``, the weight grows with the share of the edge its queue fills (full weight
        # from that share on): only queues that outlast a cycle hold the vehicles behind up for long.
        w = float(self.options["externality"])
        full = float(self.options["externality_fill"])
        if w and full > 0 and hasattr(fc, "queue") and hasattr(fc, "capacity"):
            w = w * np.clip(np.asarray(fc.queue) / np.maximum(np.asarray(fc.capacity), 1.0) / full, 0.0, 1.0)
        self._tt = self._free_tt + (1.0 + w) * np.maximum(tt - self._free_tt, 0.0)
        # Vehicles sent onto an edge show up in its readings once they get there: the load fades.
        self._load *= 0.5
        self._bounds = self._interval_bounds(now)
        for i, edge in enumerate(self._edges):
            self._set_weights(conn, i, edge)

    @staticmethod
    def _incident(conn: Any, vid: str) -> tuple[str, float]:
        """The edge an incident blocks and its announced clearance time."""
        edge = conn.vehicle.getRoadID(vid)
        stops = conn.vehicle.getStops(vid)
        until = max((float(st.until) for st in stops), default=math.inf)
        return edge, until if until > 0 else math.inf

    def _interval_bounds(self, now: float) -> list[tuple[float, float]]:
        h = self._horizons_s
        cuts = [now] + [now + (a + b) / 2 for a, b in itertools.pairwise(h)] + [now + 86400.0 * 7]
        return list(itertools.pairwise(cuts))

    def _extra(self, i: int) -> float:
        """Delay (s) the vehicles guidance sent onto edge ``i`` will add there: only what exceeds the
        edge's spare capacity (:meth:`_update`) queues."""
        excess = max(self._load[i] - self._spare[i], 0.0)
        return excess * float(self.options["load_per_vehicle"]) / self._discharge[i]

    def _set_weights(self, conn: Any, i: int, edge: str) -> None:
        extra = self._extra(i)
        for k, (begin, end) in enumerate(self._bounds):
            conn.edge.adaptTraveltime(edge, float(self._tt[k, i] + extra), begin, end)

    def _route_cost(self, edges: list[str] | tuple[str, ...], now: float) -> float:
        t = now
        for edge in edges:
            i = self._index.get(edge)
            if i is None:
                continue
            k = next((k for k, (_, end) in enumerate(self._bounds) if t < end), len(self._bounds) - 1)
            t += float(self._tt[k, i]) + self._extra(i)
        return t - now

    # --- routing -------------------------------------------------------------------------------------

    def _route(self, conn: Any, vid: str, now: float) -> None:
        try:
            route = list(conn.vehicle.getRoute(vid))
            idx = int(conn.vehicle.getRouteIndex(vid))
        except Exception:  # left the network between the listing and now
            return
        if idx < 0 or idx >= len(route) - 1:
            return
        old = route[idx:]
        old_cost = self._route_cost(old[1:], now)
        try:
            conn.vehicle.rerouteTraveltime(vid)
            new = list(conn.vehicle.getRoute(vid))[int(conn.vehicle.getRouteIndex(vid)) :]
        except Exception:
            return
        if new == old:
            return
        new_cost = self._route_cost(new[1:], now)
        if new_cost > old_cost * (1.0 - float(self.options["min_gain"])):
            with contextlib.suppress(Exception):
                conn.vehicle.setRoute(vid, old)
            return
        self.reroutes += 1
        gained, lost = set(new[1:]) - set(old[1:]), set(old[1:]) - set(new[1:])
        for edge, delta in [*((e, 1.0) for e in gained), *((e, -1.0) for e in lost)]:
            i = self._index.get(edge)
            if i is not None:
                self._load[i] = max(self._load[i] + delta, 0.0)
                self._set_weights(conn, i, edge)
