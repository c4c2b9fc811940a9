"""Max-pressure control (Varaiya 2013) with min and max green and a guard against gridlock.

Every ``decision_interval_s`` each signal picks the green whose movements have the largest pressure, the
sum over its movements of (vehicles queued on the in-lane minus vehicles queued on the out-lane), and
:class:`~roadtwin.sim.signals.SignalActuator` shows it through yellow, keeping every green between
``min_green`` and ``max_green``.

A naive max-pressure (halting in minus halting out, no max green) gridlocks RESCO's ingolstadt7 and
ingolstadt21 (REFERENCE.md: 270 and 211 vehicles never inserted): a movement whose downstream lane is full
keeps a high pressure it cannot discharge, a minor approach can stay red forever, and vehicles that SUMO
cannot insert are invisible. The guarded controller therefore

1. counts a movement only when its out-lane has room (occupancy below ``spillback_occupancy``); a
   blocked movement gets no pressure, so no green is spent on a spill-back;
   lanes shorter than ``reach_m`` are measured with the lanes that extend them through junctions
   without a signal (:meth:`~roadtwin.sim.signals.SignalNetwork.reach`): RESCO's ingolstadt21 has
   signal approaches of 0-10 m behind an unsignalised junction whose queues stand on the lane before
   it, invisible to the signal, and exits of 0 m that a single vehicle "fills";
2. adds the insertion backlog (vehicles waiting to enter the network) to the in-lanes of the approach
   they will join, so an entry that is full to its first metre still competes;
3. serves a green that has waited ``max_red`` seconds with vehicles on its movements before any other
   (the longest-waiting first): no approach starves;
4. bounds every green by ``max_green`` (the most pressing other green takes over);
5. treats a crossing split in two by a link shorter than ``split_m`` (ingolstadt21 has two, joined by
   12 and 15 m) as one: a movement onto the link counts only while the far signal drains it, and the
   queue feeding the link counts at the far signal as the link's own. A link fed while its far end is
   red holds a vehicle or two; the next ones stop inside the junction, and two such junctions facing
   each other lock for good (left-turners in both waiting for oncoming traffic that cannot leave). On
   ingolstadt21, seeds 0-31: mean RESCO delay 160.4 s and 14 seeds with more than 10 vehicles never
   inserted without this guard, 128.2 s and 8 with it;
6. chooses the two greens of a split crossing together
   (:meth:`~roadtwin.sim.signals.SignalLayout.split_crossings`): never a pair in which one signal feeds
   the link while the other shows a green that does not drain it (a side street beside the other
   signal's side street or two-way green), whatever the pressures; the best compatible pair the min
   green, max green and starvation rules allow. On ingolstadt21, seeds 0-63:
   mean RESCO delay 129.6 s and 17 seeds that gridlock without the joint choice, 114.6 s and 5 with it.

``naive=True`` (registered as ``max-pressure-naive``) switches all six off, as a benchmark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from roadtwin.agents.base import SignalController, register_controller
from roadtwin.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.signals import (
        SignalActuator,
        SignalLayout,
        SignalMeasures,
        SignalMonitor,
        SignalNetwork,
        SplitCrossing,
    )

__all__ = ["MaxPressure", "NaiveMaxPressure"]

#: ``max_green`` of the naive controller: longer than any episode.
_UNBOUNDED_S = 1.0e7
#: Added to the current green's pressure when choosing a split crossing's pair: ties keep it.
_STAY = 1.0e-6


def _only(scores: np.ndarray, green: int) -> np.ndarray:
    """``scores`` with every green but ``green`` ruled out (-inf)."""
    return np.where(np.arange(len(scores)) == green, scores, -np.inf)


@register_controller
class MaxPressure(SignalController):
    """Max-pressure signal control with min/max green, spill-back and starvation guards.

    Parameters
    ----------
    decision_interval_s
        Seconds between decisions (RESCO: 10).
    yellow_time, all_red_time
        Transition between two greens (s).
    min_green, max_green
        Bounds of a green (s); ``max_green`` is ignored when ``naive``.
    max_red
        A green whose movements have queued vehicles and that has been red this long (s) is served next.
    spillback_occupancy
        A movement whose out-lane holds at least this fraction of its capacity (length / 7.5 m) counts
        no pressure.
    reach_m
        Measure incoming lanes shorter than this with the lanes upstream that feed them, and outgoing
        lanes shorter than this with the lanes downstream they lead to, through junctions without a
        signal (0: each lane alone).
    split_m
        Links between two controlled signals shorter than this are fed only while the far signal drains
        them, their feeding queue counts there, and the two signals choose their greens together
        (0: off).
    backlog
        Count vehicles waiting to be inserted on the approach they will join.
    naive
        Plain max-pressure: halting in minus halting out, min green only, none of the guards.
    """

    name: ClassVar[str] = "max-pressure"

    def __init__(
        self,
        *,
        decision_interval_s: float = 10.0,
        yellow_time: float = 3.0,
        all_red_time: float = 0.0,
        min_green: float = 10.0,
        max_green: float = 120.0,
        max_red: float = 600.0,
        spillback_occupancy: float = 0.75,
        reach_m: float = 50.0,
        split_m: float = 25.0,
        backlog: bool = True,
        naive: bool = False,
    ) -> None:
        if decision_interval_s <= yellow_time + all_red_time:
            raise ConfigError(
                path=None,
                field="decision_interval_s",
                expected=f"more than the transition time ({yellow_time + all_red_time:g} s)",
                got=decision_interval_s,
            )
        if not 0 < spillback_occupancy <= 1:
            raise ConfigError(
                path=None,
                field="spillback_occupancy",
                expected="a fraction in (0, 1]",
                got=spillback_occupancy,
            )
        super().__init__(
            decision_interval_s=decision_interval_s,
            yellow_time=yellow_time,
            all_red_time=all_red_time,
            min_green=min_green,
            max_green=max_green,
            max_red=max_red,
            spillback_occupancy=spillback_occupancy,
            reach_m=reach_m,
            split_m=split_m,
            backlog=backlog,
            naive=naive,
        )
        self.decision_interval_s = float(decision_interval_s)
        self.naive = bool(naive)
        self.layout: SignalLayout | None = None
        self.monitor: SignalMonitor | None = None
        self.actuator: SignalActuator | None = None
        self._pending = False
        self._red_since: list[np.ndarray] = []
        self._green_log: list[tuple[float, int, int]] = []
        self._splits: list[tuple[int, np.ndarray]] = []
        self._crossings: list[SplitCrossing] = []

    # --- life cycle ----------------------------------------------------------------------------------

    def start(self, session: SumoSession) -> None:
        """Read the signals, install the switching programs and subscribe the lanes."""
        from roadtwin.sim.signals import SignalActuator, SignalMonitor, read_signal_network

        conn = session.conn
        network = read_signal_network(conn)
        tls = network.controllable()
        self.layout = None
        if not tls:  # nothing to control: the network's programs run
            return
        opts = self.options
        self.layout = self._new_layout(network, tls)
        self.monitor = SignalMonitor(
            self.layout,
            waiting_time=False,
            outgoing_halting=True,
            lane_backlog=bool(opts["backlog"]) and not self.naive,
        )
        self.monitor.subscribe(conn)
        self.actuator = SignalActuator(
            self.layout,
            yellow_time=opts["yellow_time"],
            all_red_time=opts["all_red_time"],
            min_green=opts["min_green"],
            max_green=_UNBOUNDED_S if self.naive else opts["max_green"],
        )
        self.actuator.reset(conn)
        now = session.time
        self._red_since = [np.full(int(n), now) for n in self.layout.n_greens]
        self._pending = False
        self._green_log = [(now, s, 0) for s in range(self.layout.n_signals)]
        self._splits = [] if self.naive else self.layout.split_links(max_m=opts["split_m"])
        self._crossings = [] if self.naive else self.layout.split_crossings(max_m=opts["split_m"])

    def _new_layout(
        self, network: SignalNetwork, tls: Sequence[str], *, neighbours: bool = False
    ) -> SignalLayout:
        """The layout of the controlled signals (``neighbours``: also observe theirs, for a subclass that
        reads more of the network than max-pressure does)."""
        from roadtwin.sim.signals import SignalLayout

        reach = 0.0 if self.naive else self.options["reach_m"]
        return SignalLayout(network, tls, reach_m=reach, neighbours=neighbours)

    def close(self) -> None:
        """Forget the simulation."""
        self.layout = self.monitor = self.actuator = None
        self._pending = False

    @property
    def green_log(self) -> list[tuple[float, int, int]]:
        """``(time, signal index, green index)`` of every green started (for checks and plots)."""
        return list(self._green_log)

    # --- decisions -----------------------------------------------------------------------------------

    def act(self, session: SumoSession) -> None:
        """Measure, choose every signal's green and start the transitions to it."""
        if self.layout is None or self.monitor is None or self.actuator is None:
            return
        conn = session.conn
        now = session.time
        act = self.actuator
        if self._pending:
            act.finish(session)  # no stepping: the run has reached the decision time already
            self._pending = False
        m = self.monitor.measure(conn)
        requests = self._choose(m, now)
        until = now + self.decision_interval_s
        before = act.green.copy()
        target = act.decide(requests, horizon=until - now)
        switching = act.begin(conn, target, now=now, until=until)
        self._pending = True
        for s in np.flatnonzero(switching):
            self._red_since[s][int(before[s])] = now
            self._green_log.append((now + act.transition_time, int(s), int(target[s])))

    def _choose(self, m: SignalMeasures, now: float) -> np.ndarray:
        lay = self.layout
        act = self.actuator
        assert lay is not None and act is not None
        halting, vehicles = m.lane_halting, m.lane_vehicles
        if self.naive:
            return np.array([int(np.argmax(p)) for p in lay.phase_pressure(halting)], dtype=np.intp)
        opts = self.options
        incoming = lay.approach(halting)
        if m.lane_backlog is not None:
            incoming += m.lane_backlog
        occupancy = lay.beyond(vehicles) / lay.reach_capacity
        room = occupancy[lay.move_out] < opts["spillback_occupancy"]
        outgoing = lay.beyond(halting)
        if self._splits:
            self._join_splits(incoming, room)
        move = np.where(room, incoming[lay.move_in] - outgoing[lay.move_out], 0.0)
        demand = np.where(room, incoming[lay.move_in], 0.0)
        pressures = lay.per_green(move)
        demands = lay.per_green(demand)
        requests = np.empty(lay.n_signals, dtype=np.intp)
        scores: list[np.ndarray] = []  # per signal, each green's pressure; -inf: not to be shown next
        horizon = self.decision_interval_s
        for s in range(lay.n_signals):
            cur = int(act.green[s])
            p = pressures[s].copy()
            waited = now - self._red_since[s]
            waited[cur] = 0.0
            starving = (waited >= opts["max_red"]) & (demands[s] > 0)
            if act.age[s] < act.min_green:  # the actuator keeps it
                p = _only(p, cur)
            elif starving.any():
                p = _only(p, int(np.argmax(np.where(starving, waited, -np.inf))))
            elif act.age[s] + horizon > opts["max_green"]:
                p[cur] = -np.inf  # the actuator would end it anyway: pick the best other green
            # Stay on ties: a switch costs a yellow.
            requests[s] = cur if p[cur] >= float(np.max(p)) else int(np.argmax(p))
            p[cur] += _STAY  # and in the joint choice below
            scores.append(p)
        settled: set[int] = set()  # signals a crossing chose for: a later crossing keeps their green
        for crossing in self._crossings:
            a, b = crossing.signals
            if not crossing.compatible[requests[a], requests[b]]:
                sa, sb = (_only(scores[s], int(requests[s])) if s in settled else scores[s] for s in (a, b))
                joint = np.where(crossing.compatible, sa[:, None] + sb[None, :], -np.inf)
                if np.isfinite(joint.max()):  # else min green holds both: nothing to choose yet
                    i, j = np.unravel_index(int(np.argmax(joint)), joint.shape)
                    requests[a], requests[b] = int(i), int(j)
            settled.update((a, b))
        return requests

    def _join_splits(self, incoming: np.ndarray, room: np.ndarray) -> None:
        """Guard 5, in place: no room onto a split link its far signal is not draining; the queue
        feeding it joins the link's own at the far signal."""
        lay, act = self.layout, self.actuator
        assert lay is not None and act is not None
        serving = lay.green_serves[lay.green_offset[:-1] + act.green]  # (signals, movements)
        feeding = incoming.copy()
        for m, drains in self._splits:
            if not serving[lay.move_owner[drains[0]], drains].any():
                room[m] = False
            incoming[lay.move_in[drains[0]]] += feeding[lay.move_in[m]] / len(drains)


@register_controller
class NaiveMaxPressure(MaxPressure):
    """The naive max-pressure of REFERENCE.md (halting in minus out, min green 10 s, no max green, no
    guards): a benchmark that gridlocks ingolstadt7/21."""

    name: ClassVar[str] = "max-pressure-naive"

    def __init__(
        self,
        *,
        decision_interval_s: float = 10.0,
        yellow_time: float = 3.0,
        min_green: float = 10.0,
    ) -> None:
        super().__init__(
            decision_interval_s=decision_interval_s, yellow_time=yellow_time, min_green=min_green, naive=True
        )
