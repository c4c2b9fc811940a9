"""Incidents: blocked lanes and closed roads as SUMO additionals, and the delay they cause."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from xml.etree import ElementTree as ET

from roadtwin.sim.incidents import INCIDENT_TYPE
from roadtwin.sim.inputs import prepare_inputs
from roadtwin.sim.scenario import Scenario


def _busiest_edge(routes: Path) -> str:
    """The edge most routes cross (not counting where they start or end)."""
    counts: Counter[str] = Counter()
    for veh in ET.parse(routes).getroot():
        counts.update(veh.find("route").get("edges").split()[1:-1])  # type: ignore[union-attr]
    return counts.most_common(1)[0][0]


def test_lane_blockage_is_a_stopped_incident_vehicle_near_the_stop_line(
    grid_scenario, tmp_path: Path
) -> None:
    sc = grid_scenario(
        incidents=[{"edge": "1_2", "lanes": [2], "begin": "07:01", "end": "07:09", "before_end": 40}]
    )
    inputs = prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path)
    assert inputs.additional_files[-1].name == "incidents.add.xml"
    root = ET.parse(inputs.additional_files[-1]).getroot()
    vtype = root.find("vType")
    assert vtype is not None and vtype.get("id") == INCIDENT_TYPE
    assert {p.get("key"): p.get("value") for p in vtype.iter("param")}["has.tripinfo.device"] == "false"
    (veh,) = root.findall("vehicle")
    stop = veh.find("stop")
    assert stop is not None and (veh.get("depart"), veh.get("departLane"), stop.get("until")) == (
        "25260",
        "2",
        "25740",
    )
    assert stop.get("lane") == "1_2_2"
    assert "--ignore-route-errors" not in inputs.extra_args  # nothing is closed as a whole


def test_closing_every_lane_closes_the_road_with_upstream_detours(grid_scenario, tmp_path: Path) -> None:
    sc = grid_scenario(incidents=[{"edge": "1_2", "lanes": [1, 2], "begin": "07:01", "end": "07:09"}])
    inputs = prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path)
    root = ET.parse(inputs.additional_files[-1]).getroot()
    (rerouter,) = root.findall("rerouter")
    interval = rerouter.find("interval")
    assert interval is not None and (interval.get("begin"), interval.get("end")) == ("25260.0", "25740.0")
    closing = interval.find("closingReroute")
    assert closing is not None and closing.get("id") == "1_2" and "pedestrian" in closing.get("allow", "")
    upstream = set(rerouter.get("edges", "").split())
    assert {"5_1", "7_1", "3_1"} <= upstream  # every road into junction 1 offers a detour
    assert not root.findall("vehicle")
    assert "--ignore-route-errors" in inputs.extra_args


def test_closed_road_raises_mean_time_loss(grid_scenario, run_sumo, time_loss, tmp_path: Path) -> None:
    busy = {"veh_per_hour": 2000, "min_distance": 300, "interval": 300}
    base = grid_scenario(demand=busy)
    base_in = prepare_inputs(base, net_file=base.network, out_dir=tmp_path / "base")
    edge = _busiest_edge(base_in.route_files[0])
    closed = grid_scenario(demand=busy, incidents=[{"edge": edge, "begin": "07:00", "end": "07:10"}])
    closed_in = prepare_inputs(closed, net_file=closed.network, out_dir=tmp_path / "closed")
    before = run_sumo(base_in, tmp_path / "base")
    after = run_sumo(closed_in, tmp_path / "closed")
    assert all(float(t["arrival"]) >= 0 for t in after)  # detours and waiting, no deadlock
    assert time_loss(after) > time_loss(before) * 1.2


def test_blocked_lane_raises_mean_time_loss_on_a_busy_arterial(
    small_corridor_net: Path, run_sumo, time_loss, tmp_path: Path
) -> None:
    def scenario(**fields: object) -> Scenario:
        return Scenario.model_validate({
            "name": "corridor", "network": str(small_corridor_net), "begin": "07:00", "end": "07:10", "seed": 1,
            "demand": {"veh_per_hour": 3000, "min_distance": 300, "interval": 300, "fringe_factor": 20},
            "vehicle_mix": {"car": 1.0, "bus": 0.0, "truck": 0.0, "av": 0.0}, **fields,
        })  # fmt: skip

    losses = {}
    for name, incidents in (
        ("none", []),
        ("blocked", [{"edge": "1_2", "lanes": [1], "begin": "07:00", "end": "07:10"}]),
    ):
        sc = scenario(incidents=incidents)
        trips = run_sumo(prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path / name), tmp_path / name)
        assert all(float(t["arrival"]) >= 0 for t in trips)
        losses[name] = time_loss(trips)
    assert losses["blocked"] > losses["none"] + 1.0
