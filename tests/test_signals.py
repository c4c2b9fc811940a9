"""Signal machinery on real SUMO: programs, transitions, actuation, measurement, timing plans."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from roadtwin import toolchain
from roadtwin.errors import ConfigError
from roadtwin.sim.backend import SumoSession, start
from roadtwin.sim.signals import (
    PlanActuator,
    SignalActuator,
    SignalLayout,
    SignalMonitor,
    SignalNetwork,
    green_splits,
    read_signal_network,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def grid(signal_grid: tuple[Path, Path]) -> tuple[Path, Path]:
    return signal_grid


@pytest.fixture(scope="module")
def network(grid: tuple[Path, Path]) -> SignalNetwork:
    session = _start(grid)
    try:
        return read_signal_network(session.conn)
    finally:
        session.close()


def _start(grid: tuple[Path, Path], *extra: str) -> SumoSession:
    net, trips = grid
    cmd = [toolchain.binary("sumo"), "-n", net, "-r", trips, "--no-step-log", "true", "--no-warnings", "true"]
    return start([*map(str, cmd), "--seed", "7", *extra])


def test_programs_keep_vehicle_greens_and_crossings(network: SignalNetwork) -> None:
    prog = network.programs["B1"]
    # netconvert's four-phase-plus-pedestrian-clearance program has two distinct vehicle greens.
    assert prog.n_greens == 2
    assert prog.pedestrian_links, "the crossings' links are known"
    for k in prog.pedestrian_links:
        assert prog.links[k] == ()
        # Crossings keep the states of the original (longer) phase: pedestrians walk with their green.
        assert any(state[k] == "G" for state in prog.greens)
    # Only vehicle lanes are observed: no sidewalk, walking area or crossing.
    # (lane 0 of every edge is its sidewalk, lane 1 the road)
    assert len(prog.in_lanes) == 4 and all(lane.endswith("_1") for lane in prog.in_lanes + prog.out_lanes)
    assert len(prog.phase_movements) == 2 and all(prog.phase_movements)
    assert network.controllable() == network.tls_ids


def test_transitions_between_greens(network: SignalNetwork) -> None:
    prog = network.programs["B1"]
    yellow = prog.transition(0, 1)
    all_red = prog.transition(0, 1, all_red=True)
    for k, (a, b) in enumerate(zip(prog.greens[0], prog.greens[1], strict=True)):
        losing = a in "Gg" and b not in "Gg"
        if losing and k in prog.pedestrian_links:
            assert yellow[k] == "r" and all_red[k] == "r"  # pedestrians get no yellow
        elif losing:
            assert yellow[k] == "y" and all_red[k] == "r"
        else:
            assert yellow[k] == a and all_red[k] == a  # unchanged, or red until the new green
    assert "y" in yellow and "y" not in all_red
    assert prog.transition(1, 1) == prog.greens[1]


def test_downstream_signal_and_neighbours(network: SignalNetwork) -> None:
    # An edge into B1 is attributed to B1; an edge out of B1 leads to the signal at its far end.
    assert network.downstream_signal("A1B1") == "B1"
    assert network.downstream_signal("B1C1") == "C1"
    assert network.neighbours("B1") == ("A1", "B0", "B2", "C1")
    assert network.downstream_signal("no-such-edge") is None


def test_phase_pressure_matches_movements(network: SignalNetwork) -> None:
    layout = SignalLayout(network, network.controllable())
    rng = np.random.default_rng(0)
    values = rng.integers(0, 10, size=len(layout.lanes)).astype(float)
    pos = {lane: i for i, lane in enumerate(layout.lanes)}
    pressures = layout.phase_pressure(values)
    for s, prog in enumerate(layout.programs):
        for g, moves in enumerate(prog.phase_movements):
            expected = sum(
                values[pos[prog.in_lanes[prog.movements[m][0]]]]
                - values[pos[prog.out_lanes[prog.movements[m][1]]]]
                for m in moves
            )
            assert pressures[s][g] == pytest.approx(expected)


def test_layout_rejects_unknown_or_single_green_signals(network: SignalNetwork) -> None:
    with pytest.raises(ConfigError, match="tls_ids"):
        SignalLayout(network, ["nope"])
    with pytest.raises(ConfigError, match="tls_ids"):
        SignalLayout(network, [])


def test_yellow_then_all_red_then_green(grid: tuple[Path, Path], network: SignalNetwork) -> None:
    layout = SignalLayout(network, ["B1"])
    actuator = SignalActuator(layout, yellow_time=3, all_red_time=2, min_green=5, max_green=60)
    session = _start(grid)
    try:
        tl = session.conn.trafficlight
        actuator.reset(session.conn)
        actuator.step(session, np.array([0]), until=10)
        assert tl.getRedYellowGreenState("B1") == layout.programs[0].greens[0]
        switching = actuator.begin(session.conn, np.array([1]), now=session.time, until=session.time + 10)
        assert switching.tolist() == [True]
        seen = []  # the state each simulation step ran with (SUMO switches at the start of a step)
        for _ in range(7):
            session.step(session.time + 1)
            seen.append(tl.getRedYellowGreenState("B1"))
        prog = layout.programs[0]
        assert seen[:3] == [prog.transition(0, 1)] * 3
        assert seen[3:5] == [prog.transition(0, 1, all_red=True)] * 2
        assert seen[5:] == [prog.greens[1]] * 2
        actuator.finish(session)
        assert session.time == 20 and actuator.green.tolist() == [1] and actuator.age.tolist() == [5.0]
        assert tl.getRedYellowGreenState("B1") == prog.greens[1]
    finally:
        session.close()


def test_min_and_max_green_rules(network: SignalNetwork) -> None:
    layout = SignalLayout(network, ["A1", "B1"])
    actuator = SignalActuator(layout, yellow_time=3, min_green=10, max_green=30)
    actuator.green[:] = [0, 0]
    actuator.age[:] = [7, 10]
    # A1 is too young to switch; B1 may.
    assert actuator.decide(np.array([1, 1]), horizon=10).tolist() == [0, 1]
    actuator.age[:] = [25, 15]
    # A1 would pass 30 s by the next decision: forced on, although it asked to stay.
    assert actuator.decide(np.array([0, 0]), horizon=10).tolist() == [1, 0]
    # No room for a transition in a short last step.
    assert actuator.decide(np.array([1, 1]), horizon=2).tolist() == [0, 0]
    with pytest.raises(ConfigError, match="action"):
        actuator.decide(np.array([5, 0]), horizon=10)


def test_max_red_shows_a_starved_green(network: SignalNetwork) -> None:
    layout = SignalLayout(network, ["A1", "B1"])
    actuator = SignalActuator(layout, yellow_time=3, min_green=10, max_green=10**6, max_red=60)
    actuator.green[:] = [0, 0]
    actuator.age[:] = [50, 5]
    actuator.red[:, 1] = 55
    # Green 1 would go unserved for 65 s by the next decision: A1 shows it although green 0 was asked;
    # B1's green is too young to end (min green) and holds.
    assert actuator.decide(np.array([0, 0]), horizon=10).tolist() == [1, 0]
    actuator.red[:, 1] = 40
    assert actuator.decide(np.array([0, 0]), horizon=10).tolist() == [0, 0]
    with pytest.raises(ConfigError, match="max_red"):
        SignalActuator(layout, yellow_time=3, min_green=10, max_red=12)


def test_max_red_bounds_every_red_in_a_run(grid: tuple[Path, Path], network: SignalNetwork) -> None:
    layout = SignalLayout(network, network.controllable())
    actuator = SignalActuator(layout, yellow_time=3, min_green=5, max_green=10**6, max_red=60)
    session = _start(grid)
    try:
        actuator.reset(session.conn)
        last = np.zeros((layout.n_signals, int(np.max(layout.n_greens))))
        worst = 0.0
        for t in range(10, 610, 10):  # a policy that always asks for the first green
            actuator.step(session, np.zeros(layout.n_signals, dtype=int), until=t)
            last[np.arange(layout.n_signals), actuator.green] = t
            for s, n in enumerate(layout.n_greens):
                worst = max(worst, t - float(last[s, :n].min()))
        assert worst <= 60 + 10  # every green shown at least once every max_red (+ one decision)
    finally:
        session.close()


def test_monitor_counts_backlog_of_a_blocked_entry(grid: tuple[Path, Path], network: SignalNetwork) -> None:
    layout = SignalLayout(network, network.controllable())
    monitor = SignalMonitor(layout)
    actuator = SignalActuator(layout, yellow_time=3, min_green=5, max_green=10**6)
    session = _start(grid)
    try:
        monitor.subscribe(session.conn)
        actuator.reset(session.conn)
        for t in range(10, 310, 10):  # every signal holds its first green: entries on red approaches fill up
            actuator.step(session, actuator.green, until=t)
        m = monitor.measure(session.conn)
        pending = session.conn.simulation.getPendingVehicles()
        assert m.pending == len(pending) > 0
        assert m.backlog.sum() > 0
        expected = np.zeros(layout.n_signals)
        for veh in pending:
            tls = network.downstream_signal(session.conn.vehicle.getRoute(veh)[0])
            if tls is not None:
                expected[layout.index(tls)] += 1
        np.testing.assert_array_equal(m.backlog, expected)
    finally:
        session.close()


def test_green_splits_respect_bounds_and_cycle(network: SignalNetwork) -> None:
    prog = network.programs["B1"]
    plans = green_splits(prog, cycle_time=60, yellow_time=3, all_red_time=1, min_green=10, max_green=40)
    assert plans.shape == (3, 2)
    assert (plans.sum(axis=1) == 60 - 2 * 4).all()
    assert plans.min() >= 10 and plans.max() <= 40
    assert plans[0].tolist() == [26, 26] and plans[1][0] > plans[1][1] and plans[2][1] > plans[2][0]
    with pytest.raises(ConfigError, match="cycle_time"):
        green_splits(prog, cycle_time=20, yellow_time=3, all_red_time=0, min_green=10, max_green=40)


def test_plan_actuator_runs_plans_from_cycle_boundaries(
    grid: tuple[Path, Path], network: SignalNetwork, tmp_path: Path
) -> None:
    layout = SignalLayout(network, ["B1"])
    planner = PlanActuator(layout, cycle_time=60, yellow_time=3, min_green=10, max_green=40)
    switches = tmp_path / "switches.xml"
    add = tmp_path / "out.add.xml"
    add.write_text(
        f'<additional><timedEvent type="SaveTLSSwitchStates" source="B1" dest="{switches}"/></additional>'
    )
    session = _start(grid, "-a", str(add))
    try:
        planner.reset(session.conn)
        for k, until in ((0, 60), (1, 120), (2, 180)):
            planner.step(session, np.array([k]), until=until)
    finally:
        session.close()
    events = [
        (float(e.get("time", 0)), e.get("state", "")) for e in ET.parse(switches).getroot().iter("tlsState")
    ]
    greens = layout.programs[0].greens
    starts = {t: state for t, state in events}
    for k, cycle_start in enumerate((0.0, 60.0, 120.0)):
        d0, d1 = planner.plans[0][k]
        assert starts.get(cycle_start) == greens[0]
        assert starts.get(cycle_start + d0) == layout.programs[0].transition(0, 1)
        assert starts.get(cycle_start + d0 + 3) == greens[1]
        assert starts.get(cycle_start + d0 + 3 + d1) == layout.programs[0].transition(1, 0)


def test_shared_link_indices_observe_every_lane(ingolstadt21: SignalNetwork) -> None:
    # Junction 243641585 switches four connections with link index 0 and four with index 3; each lane
    # of them is observed (the queue towards the 12 m link -174800513 stands on the second lanes).
    prog = ingolstadt21.programs["243641585"]
    assert len(prog.links[0]) == 4 and len(prog.links[3]) == 4
    assert {"23166741#5_2", "-201201945#0.78_2"} <= set(prog.in_lanes)
    assert {"-174800513_1", "-174800513_2"} <= set(prog.out_lanes)
    lanes = {(prog.in_lanes[i], prog.out_lanes[o]) for i, o in prog.movements}
    assert ("-201201945#0.78_2", "-174800513_2") in lanes


def test_reach_extends_short_lanes_through_unsignalised_junctions(ingolstadt21: SignalNetwork) -> None:
    net = ingolstadt21
    # Signal 30624898's approach from junction 1840464393 is a 0.2 m stub: its queue stands on the
    # 127 m lane before that (priority) junction.
    assert net.lane_length["315358251#1_1"] < 1
    assert net.reach("315358251#1_1", reach_m=50, upstream=True) == [("315358242#3_1", 1.0)]
    # ... and its exit the other way is a stub in front of a 128 m lane.
    assert net.reach("-315358251#1_1", reach_m=50, upstream=False) == [("-315358251#0_1", 1.0)]
    # A long lane, a lane fed by another signal (upstream) and a lane ending at a signal (downstream)
    # are not extended.
    assert net.reach("176550249#4_1", reach_m=50, upstream=True) == []
    assert net.reach("-174800513_2", reach_m=50, upstream=True) == []
    assert net.reach("136436466_1", reach_m=50, upstream=False) == []

    lay = SignalLayout(net, net.controllable(), reach_m=50)
    assert "315358242#3_1" in lay.lanes and not lay.is_in_lane[lay.lanes.index("315358242#3_1")]
    values = np.zeros(len(lay.lanes))
    values[lay.lanes.index("315358242#3_1")] = 9.0
    stub = lay.lanes.index("315358251#1_1")
    assert lay.approach(values)[stub] == 9.0
    exit_stub = lay.lanes.index("-315358251#1_1")
    assert lay.reach_capacity[exit_stub] > 10 * lay.capacity[exit_stub]
    plain = SignalLayout(net, net.controllable())
    assert len(plain.lanes) < len(lay.lanes) and plain.approach(np.ones(len(plain.lanes)))[0] == 1.0


def test_split_links_pair_the_feeders_and_drains_of_short_links(ingolstadt21: SignalNetwork) -> None:
    net = ingolstadt21
    lay = SignalLayout(net, net.controllable())
    links = lay.split_links(max_m=25)
    onto = {lay.lanes[lay.move_out[m]] for m, _ in links}
    # The two crossings split in two: 243641585 / gneJ257 (12 m link) and 30624898 / 30503246 (15 m).
    assert {lane.rsplit("_", 1)[0] for lane in onto} == {"174800513", "-174800513", "136436466", "-136436466"}
    for m, drains in links:
        link = lay.move_out[m]
        assert net.lane_length[lay.lanes[link]] < 25
        assert (lay.move_in[drains] == link).all()  # the drains leave the link ...
        assert (lay.move_owner[drains] != lay.move_owner[m]).all()  # ... at the far signal
        far = lay.move_owner[drains[0]]
        greens = lay.green_serves[lay.green_offset[far] : lay.green_offset[far + 1]]
        assert greens[:, drains].any()  # and some green of the far signal drains it
    assert lay.split_links(max_m=0) == []
    assert {lay.lanes[lay.move_out[m]] for m, _ in lay.split_links(max_m=13)} <= onto
    assert len(lay.split_links(max_m=13)) < len(links)  # the 15 m link is left out
    # green_serves is the table phase_pressure sums over
    values = np.random.default_rng(0).uniform(0, 10, len(lay.lanes))
    move = values[lay.move_in] - values[lay.move_out]
    assert np.allclose(lay.green_serves @ move, np.concatenate(lay.phase_pressure(values)))
