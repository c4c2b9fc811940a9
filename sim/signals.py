"""Traffic-signal machinery shared by the environments and the signal controllers.

Everything here reads the signals from a running SUMO (any network: RESCO's, the zone's, netconvert's) and
drives them through the TraCI API of a :class:`~roadtwin.sim.backend.SumoSession`:

- :func:`read_signal_network` reads, once per network, every traffic light's program and controlled links
  plus the road graph, into a picklable :class:`SignalNetwork`;
- :class:`SignalProgram` holds one light's green phases (phases with ``G``/``g`` on a vehicle link and no
  yellow, duplicates dropped), its incoming and outgoing vehicle lanes, its movements (in-lane to
  out-lane, for pressure) and the yellow / all-red transition between any two greens;
- :class:`SignalLayout` indexes a chosen set of lights into numpy arrays, so that a whole network's
  measures, observations and pressures are computed vectorised;
- :class:`SignalMonitor` subscribes every observed lane once and turns one subscription read per decision
  into :class:`SignalMeasures` (queues, pressure, delay, waiting time and the insertion backlog: vehicles
  that cannot enter the network, attributed to the signal their departure edge leads to);
- :class:`SignalActuator` switches greens through yellow (and optional all-red), enforcing min and max
  green, with one ``setPhase`` per switch into a program whose transitions SUMO runs by itself;
  :class:`PlanActuator` switches green-split timing plans (:func:`green_splits`) at cycle boundaries.

Pedestrian links (walking areas to crossings) keep the states of the original phase a green comes from;
they go red at once (never yellow) when a transition ends their green.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from roadtwin.errors import ConfigError, SimulationError

__all__ = [
    "HALTING_SPEED",
    "VEHICLE_SPACING_M",
    "PlanActuator",
    "SignalActuator",
    "SignalLayout",
    "SignalMeasures",
    "SignalMonitor",
    "SignalNetwork",
    "SignalProgram",
    "SplitCrossing",
    "green_splits",
    "read_signal_network",
]

#: Road length one queued vehicle takes (a 5 m car and SUMO's 2.5 m minimum gap); lane capacity =
#: length / spacing.
VEHICLE_SPACING_M = 7.5
#: SUMO counts a vehicle as halting below this speed (m/s).
HALTING_SPEED = 0.1

_GREEN = frozenset("Gg")
_TRANSITIONAL = frozenset("yYu")
#: How far (in edges) the walk from a departure edge looks for the first signalized junction.
_MAX_WALK_EDGES = 200

T = TypeVar("T")

# TraCI variable ids (traci.constants), spelled out so this module imports no SUMO package.
_VEHICLE_NUMBER = 0x10  # LAST_STEP_VEHICLE_NUMBER
_MEAN_SPEED = 0x11  # LAST_STEP_MEAN_SPEED
_HALTING_NUMBER = 0x14  # LAST_STEP_VEHICLE_HALTING_NUMBER
_WAITING_TIME = 0x7A  # VAR_WAITING_TIME


def _edge_of(lane: str) -> str:
    return lane.rsplit("_", 1)[0]


@dataclass(frozen=True)
class SignalProgram:
    """One traffic light as RoadTwin controls it.

    Attributes
    ----------
    tls_id
        The traffic light's id.
    program_id
        The SUMO program the greens were read from.
    greens
        Full signal states of the distinct green phases (a green link, no yellow), in program order. Two
        phases that differ only on pedestrian links count once: the longer one is kept, so crossings show
        the states of the phase they walk in. A pedestrian-only phase is a green of its own.
    green_durations
        The original durations of those phases (s).
    links
        Per link index, the ``(in_lane, out_lane)`` vehicle connections it switches: one on most networks,
        several where connections share an index (RESCO's ingolstadt21), none for a pedestrian or unused
        index.
    in_lanes, out_lanes
        Incoming and outgoing vehicle lanes (lanes that allow passenger cars), in link order.
    movements
        Distinct ``(in_lane, out_lane)`` vehicle movements, as indices into ``in_lanes`` and ``out_lanes``.
    phase_movements
        Per green, the indices of the movements it gives green (``G`` or ``g``).
    pedestrian_links
        Link indices from walking areas onto crossings.
    """

    tls_id: str
    program_id: str
    greens: tuple[str, ...]
    green_durations: tuple[float, ...]
    links: tuple[tuple[tuple[str, str], ...], ...]
    in_lanes: tuple[str, ...]
    out_lanes: tuple[str, ...]
    movements: tuple[tuple[int, int], ...]
    phase_movements: tuple[tuple[int, ...], ...]
    pedestrian_links: frozenset[int] = frozenset()

    @property
    def n_greens(self) -> int:
        """The number of distinct green phases."""
        return len(self.greens)

    def transition(self, i: int, j: int, *, all_red: bool = False) -> str:
        """The state shown between green ``i`` and green ``j``: yellow, or all-red after the yellow.

        A vehicle link green in ``i`` and not in ``j`` shows ``y`` (``r`` in the all-red); a pedestrian
        link that loses its green goes ``r`` at once; every other link keeps its state of green ``i``,
        except that links about to turn green stay red until green ``j`` starts.
        """
        if i == j:
            return self.greens[i]
        src, dst = self.greens[i], self.greens[j]
        out = []
        for k, (a, b) in enumerate(zip(src, dst, strict=True)):
            if a in _GREEN and b not in _GREEN:
                out.append("r" if all_red or k in self.pedestrian_links else "y")
            else:
                out.append(a)
        return "".join(out)


def _program_from_sumo(
    tls_id: str,
    program_id: str,
    phases: Sequence[tuple[str, float]],
    links: Sequence[Sequence[tuple[str, str, str]]],
    vehicle_lane: dict[str, bool],
    walking_lane: dict[str, bool],
) -> SignalProgram:
    """Build a :class:`SignalProgram` from a SUMO program's phases and ``getControlledLinks``.

    Vehicle links are those from a lane that allows passenger cars; pedestrian links those from a lane
    that allows pedestrians only. Other links (bicycle, bus or tram lanes) are switched like vehicle links
    but not observed.
    """
    n = max(len(links), max((len(s) for s, _ in phases), default=0))
    link_pairs: list[tuple[tuple[str, str], ...]] = []
    pedestrian: set[int] = set()
    for idx in range(n):
        group = links[idx] if idx < len(links) else ()
        pairs = dict.fromkeys((f, t) for f, t, _via in group if vehicle_lane.get(f, False))
        if group and all(walking_lane.get(f, False) for f, _t, _v in group):
            pedestrian.add(idx)
        link_pairs.append(tuple(pairs))
    driven = [k for k in range(n) if k not in pedestrian]

    # Distinct greens by their non-pedestrian part (a pedestrian-only phase by its whole state); among
    # duplicates keep the longest original phase, whose crossing states the green then shows.
    chosen: dict[str, tuple[int, str, float]] = {}
    for order, (state, duration) in enumerate(phases):
        if len(state) < n or any(c in _TRANSITIONAL for c in state) or not any(c in _GREEN for c in state):
            continue
        key = "".join(state[k] for k in driven)
        if not any(c in _GREEN for c in key):
            key = state
        if key not in chosen or duration > chosen[key][2]:
            first = chosen[key][0] if key in chosen else order
            chosen[key] = (first, state, duration)
    ordered = sorted(chosen.values())
    greens = tuple(state for _, state, _ in ordered)
    durations = tuple(float(d) for _, _, d in ordered)

    in_lanes = tuple(dict.fromkeys(p[0] for pairs in link_pairs for p in pairs))
    out_lanes = tuple(dict.fromkeys(p[1] for pairs in link_pairs for p in pairs))
    in_pos = {lane: i for i, lane in enumerate(in_lanes)}
    out_pos = {lane: i for i, lane in enumerate(out_lanes)}
    movements = tuple(dict.fromkeys((in_pos[p[0]], out_pos[p[1]]) for pairs in link_pairs for p in pairs))
    move_pos = {m: i for i, m in enumerate(movements)}
    phase_movements = tuple(
        tuple(
            sorted(
                {
                    move_pos[(in_pos[p[0]], out_pos[p[1]])]
                    for k, pairs in enumerate(link_pairs)
                    if state[k] in _GREEN
                    for p in pairs
                }
            )
        )
        for state in greens
    )
    return SignalProgram(
        tls_id=tls_id,
        program_id=program_id,
        greens=greens,
        green_durations=durations,
        links=tuple(link_pairs),
        in_lanes=in_lanes,
        out_lanes=out_lanes,
        movements=movements,
        phase_movements=phase_movements,
        pedestrian_links=frozenset(pedestrian),
    )


@dataclass
class SignalNetwork:
    """Every traffic light of a network and the road graph around them; static and picklable.

    Read once per network with :func:`read_signal_network`; reused across episodes and processes.
    """

    programs: dict[str, SignalProgram]
    lane_length: dict[str, float]
    lane_speed: dict[str, float]
    #: Successor edges of every non-internal edge.
    successors: dict[str, tuple[str, ...]]
    #: The traffic light whose incoming lanes an edge feeds (edges that end at a signal).
    edge_signal: dict[str, str]
    #: Successor lanes of every non-internal lane (vehicle links only).
    lane_links: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _walk_cache: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def tls_ids(self) -> tuple[str, ...]:
        """All traffic lights, sorted."""
        return tuple(sorted(self.programs))

    def controllable(self) -> tuple[str, ...]:
        """Traffic lights with at least two distinct greens (the others keep their program), sorted."""
        return tuple(t for t in self.tls_ids if self.programs[t].n_greens >= 2)

    def downstream_signal(self, edge: str) -> str | None:
        """The first signalized junction a vehicle on ``edge`` reaches (breadth-first walk), or ``None``."""
        if edge not in self._walk_cache:
            self._walk_cache[edge] = self.first_downstream(edge, self.edge_signal)
        return self._walk_cache[edge]

    def first_downstream(self, edge: str, targets: Mapping[str, T]) -> T | None:
        """The value of the first edge in ``targets`` reached from ``edge`` (itself included) by a
        breadth-first walk over successors (at most ``_MAX_WALK_EDGES`` edges), or ``None``."""
        level, seen = [edge], {edge}
        while level and len(seen) < _MAX_WALK_EDGES:
            for e in level:
                if e in targets:
                    return targets[e]
            nxt = []
            for e in level:
                for s in self.successors.get(e, ()):
                    if s not in seen:
                        seen.add(s)
                        nxt.append(s)
            level = nxt
        return None

    def reach(self, lane: str, *, reach_m: float, upstream: bool) -> list[tuple[str, float]]:
        """The lanes that extend a short signal lane to ``reach_m`` metres through unsignalised junctions.

        A signal's incoming lane can be a stub of a few metres (or none) behind a junction without a
        signal, its queue standing on the lanes before it; an outgoing lane can be such a stub in front
        of the space vehicles really drive into. Upstream, the walk follows the lanes that feed ``lane``
        and stops at lanes that end at a signal (their vehicles queue for that signal); downstream it
        follows the lanes ``lane`` leads to and stops after a lane that ends at a signal. Each lane found
        comes with its weight: each step splits its lane's weight equally among the ``k`` lanes it
        reaches (``1 / k``: the mean of two feeding lanes' queues stands for the queue upstream, half of
        a lane's room behind each of two branches), and the walk stops once the lanes found cover
        ``reach_m`` metres; empty when ``lane`` itself is long enough.
        """
        at_signal = self._signal_lanes
        found: list[tuple[str, float]] = []
        covered = self.lane_length.get(lane, 0.0)
        if lane in (self._out_lanes if upstream else at_signal):
            return found  # the lanes before it end at a signal, or it ends at one itself
        level: list[tuple[str, float]] = [(lane, 1.0)]
        seen = {lane}
        while level and covered < reach_m:
            nxt: list[tuple[str, float]] = []
            for cur, share in level:
                if not upstream and cur in at_signal:
                    continue
                near = (self._predecessors if upstream else self.lane_links).get(cur, ())
                near = tuple(n for n in near if not (upstream and n in at_signal))
                for n in near:
                    if n in seen:
                        continue
                    seen.add(n)
                    nxt.append((n, share / len(near)))
            found += nxt
            covered += max((self.lane_length.get(n, 0.0) for n, _ in nxt), default=0.0)
            level = nxt
        return found

    @cached_property
    def _signal_lanes(self) -> frozenset[str]:
        return frozenset(lane for prog in self.programs.values() for lane in prog.in_lanes)

    @cached_property
    def _out_lanes(self) -> frozenset[str]:
        return frozenset(lane for prog in self.programs.values() for lane in prog.out_lanes)

    @cached_property
    def _predecessors(self) -> dict[str, tuple[str, ...]]:
        pred: dict[str, list[str]] = {}
        for src, dests in self.lane_links.items():
            for d in dests:
                pred.setdefault(d, []).append(src)
        return {k: tuple(v) for k, v in pred.items()}

    def neighbours(self, tls_id: str) -> tuple[str, ...]:
        """Signals one road link away: the first signal downstream of each outgoing lane, and the signals
        whose outgoing lanes lead here first; sorted."""
        found: set[str] = set()
        for other, prog in self.programs.items():
            downstream = {self.downstream_signal(_edge_of(lane)) for lane in prog.out_lanes}
            if other == tls_id:
                found |= {s for s in downstream if s is not None}
            elif tls_id in downstream:
                found.add(other)
        found.discard(tls_id)
        return tuple(sorted(found))


def read_signal_network(conn: Any) -> SignalNetwork:
    """Read every traffic light's current program, controlled links and the road graph from SUMO.

    Parameters
    ----------
    conn
        A running simulation's TraCI API (``SumoSession.conn``): the libsumo module or a TraCI connection.
    """
    tl = conn.trafficlight
    raw: dict[str, tuple[str, list[tuple[str, float]], Any]] = {}
    lanes: set[str] = set()
    for tls in tl.getIDList():
        program_id = tl.getProgram(tls)
        logics = tl.getAllProgramLogics(tls)
        logic = next((lg for lg in logics if lg.programID == program_id), logics[0] if logics else None)
        phases = [(p.state, float(p.duration)) for p in logic.phases] if logic is not None else []
        links = tl.getControlledLinks(tls)
        raw[tls] = (program_id, phases, links)
        for group in links:
            for from_lane, to_lane, _via in group:
                lanes.update((from_lane, to_lane))
    vehicle_lane: dict[str, bool] = {}
    walking_lane: dict[str, bool] = {}
    length: dict[str, float] = {}
    speed: dict[str, float] = {}
    for lane in lanes:
        allowed = tuple(conn.lane.getAllowed(lane))
        walking_lane[lane] = allowed == ("pedestrian",)
        vehicle_lane[lane] = (not allowed or "passenger" in allowed) and "passenger" not in (
            conn.lane.getDisallowed(lane)
        )
        length[lane] = float(conn.lane.getLength(lane))
        speed[lane] = float(conn.lane.getMaxSpeed(lane))
    programs = {
        tls: _program_from_sumo(tls, pid, phases, links, vehicle_lane, walking_lane)
        for tls, (pid, phases, links) in raw.items()
    }
    edge_signal: dict[str, str] = {}
    for tls, prog in sorted(programs.items()):
        for lane in prog.in_lanes:
            edge_signal.setdefault(_edge_of(lane), tls)
    successors: dict[str, tuple[str, ...]] = {}
    lane_links: dict[str, tuple[str, ...]] = {}
    for edge in conn.edge.getIDList():
        if edge.startswith(":"):
            continue
        nxt: dict[str, None] = {}
        for i in range(conn.edge.getLaneNumber(edge)):
            lane = f"{edge}_{i}"
            links = conn.lane.getLinks(lane)
            for link in links:
                nxt[_edge_of(link[0])] = None
            if lane not in length:
                length[lane] = float(conn.lane.getLength(lane))
                speed[lane] = float(conn.lane.getMaxSpeed(lane))
            lane_links[lane] = tuple(link[0] for link in links if not link[0].startswith(":"))
        successors[edge] = tuple(nxt)
    return SignalNetwork(
        programs=programs,
        lane_length=length,
        lane_speed=speed,
        successors=successors,
        edge_signal=edge_signal,
        lane_links=lane_links,
    )


def _extension(
    pairs: list[tuple[int, str, float]], lane_pos: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    to = np.array([p[0] for p in pairs], dtype=np.intp)
    src = np.array([lane_pos[p[1]] for p in pairs], dtype=np.intp)
    share = np.array([p[2] for p in pairs], dtype=float)
    return to, src, share


def _extend(values: np.ndarray, ext: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    to, src, share = ext
    if not len(to):
        return values.copy()
    return values + np.bincount(to, weights=values[src] * share, minlength=len(values))


def _segments(groups: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten index groups: (flat indices, owner of each index)."""
    flat = np.fromiter((i for g in groups for i in g), dtype=np.intp)
    owner = np.repeat(np.arange(len(groups), dtype=np.intp), [len(g) for g in groups])
    return flat, owner


class SignalLayout:
    """A chosen set of traffic lights indexed into numpy arrays.

    Lanes are numbered once (``lanes``); each signal's incoming lanes, outgoing lanes, movements and
    greens are flat index arrays with an owner array, so per-signal sums are one ``np.bincount``.

    Parameters
    ----------
    network
        The network's signals, from :func:`read_signal_network`.
    tls_ids
        The signals to control, in agent order.
    neighbours
        Also observe each signal's neighbours (:meth:`SignalNetwork.neighbours`, controlled or not).
    reach_m
        Extend each controlled signal's lanes shorter than this through unsignalised junctions
        (:meth:`SignalNetwork.reach`): the extra lanes are observed too (counts only) and
        :meth:`approach` / :meth:`beyond` add them to the lane they extend. 0: no extension.
    """

    def __init__(
        self,
        network: SignalNetwork,
        tls_ids: Sequence[str],
        *,
        neighbours: bool = False,
        reach_m: float = 0.0,
    ) -> None:
        unknown = [t for t in tls_ids if t not in network.programs]
        if unknown:
            raise ConfigError(
                path=None,
                field="tls_ids",
                expected=f"signals of the network ({len(network.programs)})",
                got=unknown,
            )
        few = [t for t in tls_ids if network.programs[t].n_greens < 2]
        if few:
            raise ConfigError(
                path=None,
                field="tls_ids",
                expected="signals with at least two distinct green phases",
                got=few,
            )
        if not tls_ids:
            raise ConfigError(path=None, field="tls_ids", expected="at least one controllable signal", got=[])
        self.network = network
        self.tls_ids: tuple[str, ...] = tuple(tls_ids)
        self.programs: tuple[SignalProgram, ...] = tuple(network.programs[t] for t in self.tls_ids)
        self.n_signals = len(self.tls_ids)
        self.neighbour_ids: tuple[tuple[str, ...], ...] = tuple(
            network.neighbours(t) if neighbours else () for t in self.tls_ids
        )
        # Observed signals: the controlled ones first, then neighbours whose queues are observed.
        observed = list(self.tls_ids)
        for group in self.neighbour_ids:
            observed += [t for t in group if t not in observed]
        self.observed_ids: tuple[str, ...] = tuple(observed)

        lane_pos: dict[str, int] = {}
        in_lanes_set: set[str] = set()
        for t in self.observed_ids:
            for lane in network.programs[t].in_lanes:
                lane_pos.setdefault(lane, len(lane_pos))
                in_lanes_set.add(lane)
        for prog in self.programs:
            for lane in prog.out_lanes:
                lane_pos.setdefault(lane, len(lane_pos))
        ext: dict[bool, list[tuple[int, str, float]]] = {True: [], False: []}
        if reach_m > 0:
            for upstream, attr in ((True, "in_lanes"), (False, "out_lanes")):
                ends = dict.fromkeys(lane for p in self.programs for lane in getattr(p, attr))
                for lane in ends:
                    for other, share in network.reach(lane, reach_m=reach_m, upstream=upstream):
                        lane_pos.setdefault(other, len(lane_pos))
                        ext[upstream].append((lane_pos[lane], other, share))
        self.lanes: tuple[str, ...] = tuple(lane_pos)
        #: Lanes subscribed with speed and waiting time (incoming lanes); the rest with counts only.
        self.is_in_lane = np.array([lane in in_lanes_set for lane in self.lanes], dtype=bool)
        length = np.array([network.lane_length[lane] for lane in self.lanes], dtype=float)
        self.capacity = np.maximum(length / VEHICLE_SPACING_M, 1.0)
        self.max_speed = np.maximum(
            np.array([network.lane_speed[lane] for lane in self.lanes], dtype=float), 0.1
        )

        #: Lane extensions (:meth:`SignalNetwork.reach`): extended lane, extending lane, share; upstream
        #: of incoming lanes and downstream of outgoing lanes.
        self._up = _extension(ext[True], lane_pos)
        self._down = _extension(ext[False], lane_pos)
        #: Vehicles each lane holds with its downstream extension (the room behind an outgoing lane).
        self.reach_capacity = self.beyond(self.capacity)

        obs_in = [[lane_pos[lane] for lane in network.programs[t].in_lanes] for t in self.observed_ids]
        self.in_idx, self.in_owner = _segments(obs_in[: self.n_signals])
        self.obs_in_idx, self.obs_in_owner = _segments(obs_in)
        self.out_idx, self.out_owner = _segments(
            [[lane_pos[lane] for lane in p.out_lanes] for p in self.programs]
        )
        self.n_in_lanes = np.array([len(p.in_lanes) for p in self.programs], dtype=np.intp)
        self.n_greens = np.array([p.n_greens for p in self.programs], dtype=np.intp)
        self.green_offset = np.concatenate([[0], np.cumsum(self.n_greens)]).astype(np.intp)
        obs_pos = {t: i for i, t in enumerate(self.observed_ids)}
        self.neighbour_idx, self.neighbour_owner = _segments(
            [[obs_pos[n] for n in group] for group in self.neighbour_ids]
        )

        # Movements: lane index pairs; phase-movement pairs point into the flat movement list.
        move_in: list[int] = []
        move_out: list[int] = []
        move_owner: list[int] = []
        pm_green: list[int] = []
        pm_move: list[int] = []
        for s, prog in enumerate(self.programs):
            base = len(move_in)
            for i, o in prog.movements:
                move_in.append(lane_pos[prog.in_lanes[i]])
                move_out.append(lane_pos[prog.out_lanes[o]])
                move_owner.append(s)
            for g, moves in enumerate(prog.phase_movements):
                for m in moves:
                    pm_green.append(int(self.green_offset[s]) + g)
                    pm_move.append(base + m)
        self.move_in = np.array(move_in, dtype=np.intp)
        self.move_out = np.array(move_out, dtype=np.intp)
        self.move_owner = np.array(move_owner, dtype=np.intp)
        self._pm_green = np.array(pm_green, dtype=np.intp)
        self._pm_move = np.array(pm_move, dtype=np.intp)
        self._tls_pos = {t: i for i, t in enumerate(self.tls_ids)}

    def index(self, tls_id: str) -> int:
        """The position of a controlled signal."""
        return self._tls_pos[tls_id]

    def per_signal(self, values: np.ndarray, owner: np.ndarray, n: int | None = None) -> np.ndarray:
        """Sum ``values`` by their ``owner`` signal."""
        return np.bincount(owner, weights=values, minlength=self.n_signals if n is None else n)

    def approach(self, lane_values: np.ndarray) -> np.ndarray:
        """``lane_values`` with each extended incoming lane's upstream lanes added to it (their share)."""
        return _extend(lane_values, self._up)

    def beyond(self, lane_values: np.ndarray) -> np.ndarray:
        """``lane_values`` with each extended outgoing lane's downstream lanes added (their share);
        ``beyond(capacity)`` is :attr:`reach_capacity`."""
        return _extend(lane_values, self._down)

    @cached_property
    def green_serves(self) -> np.ndarray:
        """``(greens, movements)`` booleans: whether each green (flat, see :attr:`green_offset`) serves
        each movement."""
        out = np.zeros((int(self.green_offset[-1]), len(self.move_in)), dtype=bool)
        out[self._pm_green, self._pm_move] = True
        return out

    def split_links(self, *, max_m: float) -> list[tuple[int, np.ndarray]]:
        """Movements onto a short link between two controlled signals: one crossing split in two.

        Returns ``(movement, drains)`` for every movement whose outgoing lane is shorter than ``max_m``
        and is an incoming lane of another controlled signal; ``drains`` are that signal's movements
        out of the lane. Such a link holds a vehicle or two: fed while its far end is red, it fills, and
        the vehicles behind stop inside the junction, where they can lock the crossing for good.
        """
        if max_m <= 0:
            return []
        drains: dict[int, list[int]] = {}
        for m, lane in enumerate(self.move_in):
            drains.setdefault(int(lane), []).append(m)
        out = []
        for m, (lane, owner) in enumerate(zip(self.move_out, self.move_owner, strict=True)):
            far = [d for d in drains.get(int(lane), []) if self.move_owner[d] != owner]
            if far and self.network.lane_length[self.lanes[lane]] < max_m:
                out.append((m, np.array(far, dtype=np.intp)))
        return out

    def split_crossings(self, *, max_m: float) -> list[SplitCrossing]:
        """The crossings split in two by links shorter than ``max_m`` (see :meth:`split_links`), with
        the pairs of greens the two signals may show together: none that feeds a link while the signal
        at its far end shows a green that does not drain it."""
        pairs: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for m, drains in self.split_links(max_m=max_m):
            near, far = int(self.move_owner[m]), int(self.move_owner[drains[0]])
            pairs.setdefault((min(near, far), max(near, far)), []).append((m, drains))
        out = []
        for (a, b), links in pairs.items():
            serves = [
                self.green_serves[self.green_offset[s] : self.green_offset[s + 1]] for s in (a, b)
            ]  # (greens, movements) of each signal
            compatible = np.ones((int(self.n_greens[a]), int(self.n_greens[b])), dtype=bool)
            for m, drains in links:
                near = 0 if int(self.move_owner[m]) == a else 1
                feeds = serves[near][:, m]
                drained = serves[1 - near][:, drains].any(axis=1)
                bad = np.logical_and.outer(feeds, ~drained)  # (near greens, far greens)
                compatible &= ~(bad if near == 0 else bad.T)
            out.append(SplitCrossing(signals=(a, b), compatible=compatible))
        return out

    def green_sums(self, movement_values: np.ndarray) -> np.ndarray:
        """Each green's sum of ``movement_values`` over the movements it serves, flat (signal by signal,
        see :attr:`green_offset`)."""
        return np.bincount(
            self._pm_green, weights=movement_values[self._pm_move], minlength=int(self.green_offset[-1])
        )

    def per_green(self, movement_values: np.ndarray) -> list[np.ndarray]:
        """Per signal, each green's sum of ``movement_values`` over the movements it serves."""
        return np.split(self.green_sums(movement_values), self.green_offset[1:-1])

    def phase_pressure(self, lane_values: np.ndarray) -> list[np.ndarray]:
        """Per signal, each green's pressure: the sum over the movements it serves of in-lane minus
        out-lane ``lane_values`` (halting or vehicle numbers), as max-pressure control uses it."""
        return self.per_green(lane_values[self.move_in] - lane_values[self.move_out])


@dataclass(frozen=True)
class SplitCrossing:
    """Two controlled signals that are one crossing split in two by short links
    (:meth:`SignalLayout.split_crossings`).

    Attributes
    ----------
    signals
        The two signals' indices in the layout.
    compatible
        ``compatible[i, j]``: the first signal's green ``i`` and the second's green ``j`` may run
        together (no link is fed while its far end does not drain it).
    """

    signals: tuple[int, int]
    compatible: np.ndarray


@dataclass(frozen=True)
class SignalMeasures:
    """What the controlled signals see at one decision (arrays per signal, in layout order).

    Attributes
    ----------
    time
        Simulation time (s).
    queue
        Halting vehicles on the incoming lanes.
    vehicles
        Vehicles on the incoming lanes.
    pressure
        Sum over movements of vehicles on the in-lane minus vehicles on the out-lane (PressLight's).
    delay
        Sum over incoming lanes of vehicles x (1 - mean speed / speed limit): vehicle-seconds of delay
        per second.
    wait
        Sum of the current waiting times of the vehicles on the incoming lanes (s); zeros when the
        monitor does not measure it.
    backlog
        Vehicles waiting to be inserted whose departure edge leads to this signal first.
    pending
        All vehicles waiting to be inserted in the network (attributed or not).
    lane_vehicles, lane_halting, lane_speed
        Per observed lane (``SignalLayout.lanes``); ``lane_speed`` is the speed limit's fraction, 1 when
        empty (SUMO reports the limit for an empty lane) and 0 on outgoing-only lanes.
    lane_backlog
        Per observed lane, the vehicles waiting to be inserted that will join it (spread over the lanes
        of the first controlled approach their route reaches); ``None`` unless the monitor measures it.
    """

    time: float
    queue: np.ndarray
    vehicles: np.ndarray
    pressure: np.ndarray
    delay: np.ndarray
    wait: np.ndarray
    backlog: np.ndarray
    pending: int
    lane_vehicles: np.ndarray
    lane_halting: np.ndarray
    lane_speed: np.ndarray
    lane_backlog: np.ndarray | None = None


class SignalMonitor:
    """Per-decision measurement of a layout's lanes through one subscription read.

    :meth:`subscribe` subscribes every observed lane once: incoming lanes with their vehicle number,
    halting number and mean speed (and waiting time), outgoing-only lanes with their vehicle number (and
    halting number). :meth:`measure` reads every result with one ``lane.getAllSubscriptionResults()`` and
    the pending vehicles with one ``simulation.getPendingVehicles()``; only a pending vehicle seen for
    the first time costs a getter (its route's first edge), and the signal and lanes an edge leads to
    are cached per edge.

    SUMO updates subscriptions after every ``simulationStep`` call, so variables nobody reads are left
    out: each costs time on every step.

    Parameters
    ----------
    layout
        The signals to measure.
    waiting_time
        Also measure the waiting time on incoming lanes (``SignalMeasures.wait``; zeros otherwise).
    outgoing_halting
        Also measure halting vehicles on outgoing-only lanes (``lane_halting`` there; zeros otherwise),
        as max-pressure on queues needs.
    lane_backlog
        Also attribute the vehicles waiting to be inserted to the lanes they will join
        (``SignalMeasures.lane_backlog``), so that an entry full to its first metre still counts.
    """

    def __init__(
        self,
        layout: SignalLayout,
        *,
        waiting_time: bool = True,
        outgoing_halting: bool = True,
        lane_backlog: bool = False,
    ) -> None:
        self.layout = layout
        self.waiting_time = waiting_time
        self.outgoing_halting = outgoing_halting
        self.lane_backlog = lane_backlog
        self._entry_lanes: dict[str, np.ndarray] = {}
        self._approach_index: dict[str, list[int]] = {}
        for i, lane in enumerate(layout.lanes):
            if layout.is_in_lane[i]:
                self._approach_index.setdefault(lane.rsplit("_", 1)[0], []).append(i)
        self._in_mask = layout.is_in_lane
        self._in_vars = (_VEHICLE_NUMBER, _HALTING_NUMBER, _MEAN_SPEED) + (
            (_WAITING_TIME,) if waiting_time else ()
        )
        self._out_vars = (_VEHICLE_NUMBER,) + ((_HALTING_NUMBER,) if outgoing_halting else ())
        self._pending_edge: dict[str, str] = {}
        self._edge_signal: dict[str, int] = {}

    def subscribe(self, conn: Any) -> None:
        """Subscribe every observed lane (once per simulation)."""
        for lane, is_in in zip(self.layout.lanes, self._in_mask, strict=True):
            conn.lane.subscribe(lane, self._in_vars if is_in else self._out_vars)
        self._pending_edge = {}

    def _signal_of_edge(self, edge: str) -> int:
        pos = self._edge_signal.get(edge)
        if pos is None:
            tls = self.layout.network.downstream_signal(edge)
            pos = self.layout._tls_pos.get(tls, -1) if tls is not None else -1
            self._edge_signal[edge] = pos
        return pos

    def backlog(self, conn: Any) -> tuple[np.ndarray, int]:
        """Pending (not yet inserted) vehicles per controlled signal, and all pending vehicles."""
        counts, pending, _ = self._read_pending(conn, lanes=False)
        return counts, pending

    def backlog_lanes(self, conn: Any) -> np.ndarray:
        """Per observed lane, the vehicles waiting to be inserted that will join it (spread over the lanes
        of the first controlled approach downstream of their departure edge; none where the first
        signal downstream is not in the layout)."""
        per_lane = self._read_pending(conn, lanes=True)[2]
        assert per_lane is not None
        return per_lane

    def _read_pending(self, conn: Any, *, lanes: bool) -> tuple[np.ndarray, int, np.ndarray | None]:
        """One pass over the pending vehicles: per signal, all of them, and (``lanes``) per lane.

        Only a vehicle seen for the first time costs a getter (its route's first edge); the signal and
        the lanes an edge leads to are cached per edge.
        """
        pending = conn.simulation.getPendingVehicles()
        known = self._pending_edge
        current: dict[str, str] = {}
        counts = np.zeros(self.layout.n_signals)
        per_lane = np.zeros(len(self.layout.lanes)) if lanes else None
        for veh in pending:
            edge = known.get(veh)
            if edge is None:
                route = conn.vehicle.getRoute(veh)
                edge = route[0] if route else ""
            current[veh] = edge
            pos = self._signal_of_edge(edge) if edge else -1
            if pos < 0:
                continue
            counts[pos] += 1.0
            if per_lane is not None:
                idx = self._approach_lanes(edge)
                if len(idx):
                    per_lane[idx] += 1.0 / len(idx)
        self._pending_edge = current
        return counts, len(pending), per_lane

    def _approach_lanes(self, edge: str) -> np.ndarray:
        """Lane indices of the first controlled approach downstream of ``edge`` (breadth-first)."""
        cached = self._entry_lanes.get(edge)
        if cached is not None:
            return cached
        found = self.layout.network.first_downstream(edge, self._approach_index)
        lanes = np.array(found if found is not None else [], dtype=np.intp)
        self._entry_lanes[edge] = lanes
        return lanes

    def measure(self, conn: Any) -> SignalMeasures:
        """Read the subscriptions and the pending vehicles; compute every signal's measures."""
        lay = self.layout
        res = conn.lane.getAllSubscriptionResults()
        try:
            rows = [res[lane] for lane in lay.lanes]
        except KeyError as exc:
            raise SimulationError(
                f"lane {exc} is not subscribed: call SignalMonitor.subscribe first"
            ) from exc
        n_lanes = len(rows)
        in_mask = self._in_mask
        in_rows = [r for r, is_in in zip(rows, in_mask, strict=True) if is_in]
        n_in = len(in_rows)
        veh = np.fromiter((r[_VEHICLE_NUMBER] for r in rows), dtype=float, count=n_lanes)
        halt = np.zeros(n_lanes)
        speed = np.zeros(n_lanes)
        wait = np.zeros(n_lanes)
        if self.outgoing_halting:
            halt[:] = np.fromiter((r[_HALTING_NUMBER] for r in rows), dtype=float, count=n_lanes)
        else:
            halt[in_mask] = np.fromiter((r[_HALTING_NUMBER] for r in in_rows), dtype=float, count=n_in)
        speed[in_mask] = np.fromiter((r[_MEAN_SPEED] for r in in_rows), dtype=float, count=n_in)
        if self.waiting_time:
            wait[in_mask] = np.fromiter((r[_WAITING_TIME] for r in in_rows), dtype=float, count=n_in)
        speed_frac = np.clip(speed / lay.max_speed, 0.0, 1.0)
        i_idx, i_own = lay.in_idx, lay.in_owner
        move = veh[lay.move_in] - veh[lay.move_out]
        backlog, pending, lane_backlog = self._read_pending(conn, lanes=self.lane_backlog)
        return SignalMeasures(
            time=float(conn.simulation.getTime()),
            queue=lay.per_signal(halt[i_idx], i_own),
            vehicles=lay.per_signal(veh[i_idx], i_own),
            pressure=lay.per_signal(move, lay.move_owner),
            delay=lay.per_signal(veh[i_idx] * (1.0 - speed_frac[i_idx]), i_own),
            wait=lay.per_signal(wait[i_idx], i_own),
            backlog=backlog,
            pending=pending,
            lane_vehicles=veh,
            lane_halting=halt,
            lane_speed=speed_frac,
            lane_backlog=lane_backlog,
        )


def _check_timing(*, yellow_time: float, all_red_time: float, min_green: float, max_green: float) -> None:
    if yellow_time < 0 or all_red_time < 0:
        raise ConfigError(
            path=None,
            field="yellow_time",
            expected="yellow and all-red times >= 0",
            got=(yellow_time, all_red_time),
        )
    if min_green < 0 or max_green <= min_green:
        raise ConfigError(
            path=None, field="max_green", expected="0 <= min_green < max_green", got=(min_green, max_green)
        )


class SignalActuator:
    """Green-phase control of a layout's signals: "go to green k", made safe.

    At each decision a signal asked for another green switches only once its green has lasted
    ``min_green``; a green that would pass ``max_green`` before the next decision is ended in favour of
    the next green in cycle order, whatever was asked. Green durations therefore lie in
    ``[min_green, max_green]`` as long as ``max_green`` is at least one decision interval. With
    ``max_red``, a green that would stay unserved longer than ``max_red`` by the next decision is shown
    next (once the current green has had ``min_green``), whatever was asked: no approach is starved, so a
    policy cannot block an entry by serving only the others.

    :meth:`reset` installs one SUMO program per signal (id :attr:`PROGRAM_ID`): its greens, held until
    told otherwise, and for every ordered pair of greens the yellow (``yellow_time``) and all-red
    (``all_red_time``) transition, chained to the next green with the phases' ``next``. A switch is then
    one ``setPhase`` and SUMO shows yellow, all-red and the new green on time by itself, so a decision
    costs a single ``simulationStep`` (and a single subscription update) whatever the transitions.

    Use :meth:`step`, or :meth:`begin` then :meth:`finish` to look at the transition in between.

    Parameters
    ----------
    layout
        The signals to drive.
    yellow_time, all_red_time
        Transition times (s).
    min_green, max_green
        Bounds on a green's duration (s).
    max_red
        Longest time (s) a green may go unserved; ``None``: no bound.
    """

    PROGRAM_ID = "roadtwin"
    #: Duration of a held green (s): longer than any episode; the actuator ends it.
    HOLD_S = 1.0e7

    def __init__(
        self,
        layout: SignalLayout,
        *,
        yellow_time: float = 3.0,
        all_red_time: float = 0.0,
        min_green: float = 5.0,
        max_green: float = 60.0,
        max_red: float | None = None,
    ) -> None:
        _check_timing(
            yellow_time=yellow_time, all_red_time=all_red_time, min_green=min_green, max_green=max_green
        )
        if max_red is not None and max_red <= min_green + yellow_time + all_red_time:
            raise ConfigError(
                path=None,
                field="max_red",
                expected=f"more than min_green plus the transition ({min_green + yellow_time + all_red_time:g} s)",
                got=max_red,
            )
        self.layout = layout
        self.yellow_time = float(yellow_time)
        self.all_red_time = float(all_red_time)
        self.min_green = float(min_green)
        self.max_green = float(max_green)
        self.max_red = None if max_red is None else float(max_red)
        n = layout.n_signals
        #: The current green of each signal (the target one during a transition).
        self.green = np.zeros(n, dtype=np.intp)
        #: Seconds since the current green started, as of the last decision.
        self.age = np.zeros(n)
        #: Seconds since each green (column) of each signal was last shown; ``-inf`` pads missing greens.
        self.red = self._fresh_red()
        self._pending: tuple[float, float, np.ndarray, np.ndarray] | None = None
        self._programs = [self._program(p) for p in layout.programs]

    @property
    def transition_time(self) -> float:
        """Yellow plus all-red (s)."""
        return self.yellow_time + self.all_red_time

    def _program(
        self, prog: SignalProgram
    ) -> tuple[list[tuple[float, str, tuple[int, ...]]], dict[tuple[int, int], int]]:
        """Phases ``(duration, state, next)`` and the phase index that starts each switch ``(i, j)``."""
        n = prog.n_greens
        phases: list[tuple[float, str, tuple[int, ...]]] = [
            (self.HOLD_S, g, (k,)) for k, g in enumerate(prog.greens)
        ]
        entry: dict[tuple[int, int], int] = {}
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                chain = []
                if self.yellow_time > 0:
                    chain.append((self.yellow_time, prog.transition(i, j)))
                if self.all_red_time > 0:
                    chain.append((self.all_red_time, prog.transition(i, j, all_red=True)))
                entry[(i, j)] = len(phases) if chain else j
                for k, (duration, state) in enumerate(chain):
                    nxt = len(phases) + 1 if k + 1 < len(chain) else j
                    phases.append((duration, state, (nxt,)))
        return phases, entry

    def reset(self, conn: Any, *, greens: Sequence[int] | None = None) -> None:
        """Install the programs and show each signal's first green (or ``greens``) now, aged zero."""
        n = self.layout.n_signals
        self.green = (
            np.zeros(n, dtype=np.intp) if greens is None else np.asarray(greens, dtype=np.intp).copy()
        )
        self.age = np.zeros(n)
        self.red = self._fresh_red()
        self._pending = None
        tl = conn.trafficlight
        for prog, (phases, _), g in zip(self.layout.programs, self._programs, self.green, strict=True):
            logic = tl.Logic(
                self.PROGRAM_ID, 0, int(g), [tl.Phase(d, s, -1, -1, nxt, "") for d, s, nxt in phases]
            )
            tl.setProgramLogic(prog.tls_id, logic)
            tl.setProgram(prog.tls_id, self.PROGRAM_ID)
            tl.setPhase(prog.tls_id, int(g))

    def decide(self, requests: np.ndarray, *, horizon: float) -> np.ndarray:
        """The greens the signals will show, given the requested ones and ``horizon`` s to the next
        decision (min green, max green and cycle order applied; no SUMO call)."""
        req = np.asarray(requests, dtype=np.intp)
        if req.shape != self.green.shape or np.any(req < 0) or np.any(req >= self.layout.n_greens):
            raise ConfigError(
                path=None,
                field="action",
                expected=f"one green index per signal below {self.layout.n_greens}",
                got=req,
            )
        if horizon <= self.transition_time:  # no room for a switch (a short last step)
            return self.green.copy()
        may_switch = self.age >= self.min_green
        target = np.where(may_switch, req, self.green)
        too_long = self.age + horizon > self.max_green
        forced = (self.green + 1) % self.layout.n_greens
        target = np.where(too_long & (target == self.green), forced, target)
        if self.max_red is not None:
            rows = np.arange(len(self.green))
            waiting = self.red.copy()
            waiting[rows, self.green] = -np.inf
            starved = waiting.argmax(axis=1)
            overdue = waiting[rows, starved] + horizon > self.max_red
            target = np.where(overdue & (may_switch | too_long), starved, target)
        return target

    def _fresh_red(self) -> np.ndarray:
        n_greens = np.asarray(self.layout.n_greens)
        width = int(n_greens.max()) if n_greens.size else 0
        return np.where(np.arange(width)[None, :] < n_greens[:, None], 0.0, -np.inf)

    def begin(self, conn: Any, requests: np.ndarray, *, now: float, until: float) -> np.ndarray:
        """Decide and start the transition of every switching signal; return the switching mask."""
        target = self.decide(requests, horizon=until - now)
        switching = target != self.green
        tl = conn.trafficlight
        for s in np.flatnonzero(switching):
            tl.setPhase(self.layout.tls_ids[s], self._programs[s][1][(int(self.green[s]), int(target[s]))])
        self._pending = (float(now), float(until), target, switching)
        return switching

    def finish(self, session: Any) -> None:
        """Run the simulation to the decision's end (SUMO shows all-red and the new greens on time)."""
        if self._pending is None:
            raise SimulationError("SignalActuator.finish called without begin")
        now, until, target, switching = self._pending
        self._pending = None
        _step_to(session, until)
        elapsed = until - now
        self.age = np.where(switching, elapsed - self.transition_time, self.age + elapsed)
        self.green = target
        self.red += elapsed
        self.red[np.arange(len(target)), target] = 0.0

    def step(self, session: Any, requests: np.ndarray, *, until: float) -> np.ndarray:
        """Apply the requested greens and run the simulation to ``until``; return the switching mask."""
        switching = self.begin(session.conn, requests, now=session.time, until=until)
        self.finish(session)
        return switching


def _step_to(session: Any, t: float) -> None:
    if t > session.time + 1e-9:
        session.step(t)


def green_splits(
    program: SignalProgram,
    *,
    cycle_time: float,
    yellow_time: float,
    all_red_time: float,
    min_green: float,
    max_green: float,
) -> np.ndarray:
    """Whole-second green durations of a signal's timing plans, shape ``(n_greens + 1, n_greens)``.

    Plan 0 splits the cycle's green time equally; plan ``k`` (1..n) gives green ``k - 1`` twice the
    share of each other green. Every green lies in ``[min_green, max_green]`` and each plan's greens plus
    one transition per green add up to ``cycle_time``.
    """
    n = program.n_greens
    green_total = cycle_time - n * (yellow_time + all_red_time)
    if not n * min_green <= green_total <= n * max_green:
        lo = n * (min_green + yellow_time + all_red_time)
        hi = n * (max_green + yellow_time + all_red_time)
        raise ConfigError(
            path=None,
            field="cycle_time",
            expected=f"a cycle between {lo:g} and {hi:g} s for signal {program.tls_id} ({n} greens)",
            got=cycle_time,
        )
    plans = []
    for k in range(n + 1):
        weight = np.ones(n)
        if k:
            weight[k - 1] = 2.0
        plans.append(_largest_remainder(_fill(weight, green_total, min_green, max_green), round(green_total)))
    return np.array(plans, dtype=int)


def _fill(weight: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """Split ``total`` in proportion to ``weight`` within ``[lo, hi]`` each (water filling)."""
    fixed = np.full(len(weight), np.nan)
    for _ in range(len(weight) + 1):
        free = np.isnan(fixed)
        rest = total - np.nansum(fixed)
        share = np.where(free, rest * weight / weight[free].sum(), fixed)
        low, high = free & (share < lo), free & (share > hi)
        if not (low.any() or high.any()):
            return share
        fixed[low], fixed[high] = lo, hi
    return np.clip(share, lo, hi)


def _largest_remainder(values: np.ndarray, total: int) -> np.ndarray:
    base = np.floor(values + 1e-9).astype(int)
    for i in np.argsort(-(values - base), kind="stable")[: max(total - int(base.sum()), 0)]:
        base[i] += 1
    return base


class PlanActuator:
    """Timing-plan control: each signal runs one of its :func:`green_splits` plans as a SUMO program.

    At :meth:`reset` every plan is installed as program ``roadtwin-plan-<k>`` (greens in program order,
    each followed by its yellow and all-red transition to the next) and plan 0 starts. :meth:`step` runs
    exactly one cycle: a signal given a new plan switches to it at the cycle boundary (phase 0), and SUMO
    runs the phases itself, so a cycle costs one ``simulationStep`` plus two calls per changed signal.
    """

    PROGRAM_PREFIX = "roadtwin-plan-"

    def __init__(
        self,
        layout: SignalLayout,
        *,
        cycle_time: float = 90.0,
        yellow_time: float = 3.0,
        all_red_time: float = 0.0,
        min_green: float = 5.0,
        max_green: float = 60.0,
    ) -> None:
        _check_timing(
            yellow_time=yellow_time, all_red_time=all_red_time, min_green=min_green, max_green=max_green
        )
        if any(float(x) != int(x) for x in (cycle_time, yellow_time, all_red_time)):
            raise ConfigError(
                path=None,
                field="cycle_time",
                expected="whole seconds for cycle, yellow and all-red times",
                got=(cycle_time, yellow_time, all_red_time),
            )
        self.layout = layout
        self.cycle_time = float(cycle_time)
        self.yellow_time = float(yellow_time)
        self.all_red_time = float(all_red_time)
        self.plans = [
            green_splits(
                p,
                cycle_time=cycle_time,
                yellow_time=yellow_time,
                all_red_time=all_red_time,
                min_green=min_green,
                max_green=max_green,
            )
            for p in layout.programs
        ]
        self.n_plans = np.array([len(p) for p in self.plans], dtype=np.intp)
        self.plan = np.zeros(layout.n_signals, dtype=np.intp)

    def _phases(self, prog: SignalProgram, durations: Iterable[int]) -> list[tuple[float, str]]:
        phases: list[tuple[float, str]] = []
        n = prog.n_greens
        for g, d in enumerate(durations):
            phases.append((float(d), prog.greens[g]))
            if self.yellow_time > 0:
                phases.append((self.yellow_time, prog.transition(g, (g + 1) % n)))
            if self.all_red_time > 0:
                phases.append((self.all_red_time, prog.transition(g, (g + 1) % n, all_red=True)))
        return phases

    def reset(self, conn: Any) -> None:
        """Install every signal's plans as SUMO programs and start plan 0."""
        tl = conn.trafficlight
        for prog, plans in zip(self.layout.programs, self.plans, strict=True):
            for k in range(len(plans) - 1, -1, -1):  # plan 0 last: setProgramLogic activates it
                phases = [tl.Phase(d, s) for d, s in self._phases(prog, plans[k])]
                tl.setProgramLogic(prog.tls_id, tl.Logic(f"{self.PROGRAM_PREFIX}{k}", 0, 0, phases))
            tl.setProgram(prog.tls_id, f"{self.PROGRAM_PREFIX}0")
            tl.setPhase(prog.tls_id, 0)
        self.plan = np.zeros(self.layout.n_signals, dtype=np.intp)

    def step(self, session: Any, plans: np.ndarray, *, until: float) -> np.ndarray:
        """Switch signals to ``plans`` from this cycle on and run to ``until`` (one cycle); return the
        mask of signals whose plan changed."""
        req = np.asarray(plans, dtype=np.intp)
        if req.shape != self.plan.shape or np.any(req < 0) or np.any(req >= self.n_plans):
            raise ConfigError(
                path=None, field="action", expected=f"one plan index per signal below {self.n_plans}", got=req
            )
        changed = req != self.plan
        tl = session.conn.trafficlight
        for s in np.flatnonzero(changed):
            tls = self.layout.tls_ids[s]
            tl.setProgram(tls, f"{self.PROGRAM_PREFIX}{req[s]}")
            tl.setPhase(tls, 0)
        self.plan = req
        _step_to(session, until)
        return changed
