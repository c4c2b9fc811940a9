"""Demand: time-of-day rates, seeded route files, the fleet mix and the walkers in the generated inputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from roadtwin.sim.demand import interval_rates, profile_factor
from roadtwin.sim.inputs import prepare_inputs
from roadtwin.sim.scenario import builtin_scenario, load_scenario


def test_profile_interpolates_and_holds_its_ends() -> None:
    profile = [(100.0, 0.5), (200.0, 1.5)]
    assert profile_factor(50, profile) == 0.5
    assert profile_factor(150, profile) == pytest.approx(1.0)
    assert profile_factor(300, profile) == 1.5
    assert profile_factor(123, []) == 1.0


def test_interval_rates_follow_the_profile_and_the_total() -> None:
    flat = interval_rates(begin=0, end=3600, interval=900, veh_per_hour=1000)
    assert flat == [1000.0] * 4
    peak = interval_rates(begin=0, end=3600, interval=900, veh_per_hour=1000, profile=[(0, 0.5), (3600, 1.5)])
    assert peak == pytest.approx([625.0, 875.0, 1125.0, 1375.0])
    total = interval_rates(
        begin=0, end=7200, interval=900, total_vehicles=4000, profile=[(0, 0.5), (7200, 1.5)]
    )
    assert sum(r * 0.25 for r in total) == pytest.approx(4000)


def test_builtin_morning_peak_holds_8050_vehicles_peaking_0745_0815() -> None:
    sc = load_scenario(builtin_scenario())
    d = sc.demand
    rates = interval_rates(
        begin=sc.begin_s, end=sc.end_s, interval=d.interval, veh_per_hour=d.veh_per_hour, profile=d.points()
    )
    assert len(rates) == 8
    assert sum(r * 0.25 for r in rates) == pytest.approx(8044, abs=1)
    assert max(rates) == rates[3] == rates[4] == d.veh_per_hour  # 07:45-08:15
    assert rates[0] < rates[1] < rates[2] < rates[3] and rates[4] > rates[5] > rates[6] > rates[7]


def _files(inputs) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (*inputs.route_files, *inputs.additional_files)}


def test_same_seed_identical_route_files_other_seed_different(grid_scenario, tmp_path: Path) -> None:
    fields = {
        "pedestrians": {"per_hour": 300},
        "vehicle_mix": {"car": 0.8, "bus": 0.03, "truck": 0.07, "av": 0.1},
    }
    a = prepare_inputs(
        grid_scenario(seed=5, **fields), net_file=grid_scenario().network, out_dir=tmp_path / "a"
    )
    b = prepare_inputs(
        grid_scenario(seed=5, **fields), net_file=grid_scenario().network, out_dir=tmp_path / "b"
    )
    c = prepare_inputs(
        grid_scenario(seed=6, **fields), net_file=grid_scenario().network, out_dir=tmp_path / "c"
    )
    assert [p.name for p in a.route_files] == ["vehicles.rou.xml", "persons.rou.xml"]
    assert _files(a) == _files(b)
    assert _files(a)["vehicles.rou.xml"] != _files(c)["vehicles.rou.xml"]
    assert _files(a)["persons.rou.xml"] != _files(c)["persons.rou.xml"]
    assert b"generated on" not in _files(a)["vehicles.rou.xml"]  # no timestamps, no machine paths
    assert str(tmp_path).encode() not in _files(a)["vehicles.rou.xml"]
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # work folders cleaned up


def test_routes_match_the_demand_mix_and_window(grid_scenario, tmp_path: Path) -> None:
    sc = grid_scenario(
        end="07:30",
        demand={"veh_per_hour": 2400, "interval": 600, "profile": [{"at": "07:00", "factor": 0.5},
                                                                   {"at": "07:30", "factor": 1.5}]},
        vehicle_mix={"car": 0.6, "bus": 0.1, "truck": 0.1, "av": 0.2},
        pedestrians={"per_hour": 600},
    )  # fmt: skip
    inputs = prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path)
    vehicles = [v for v in ET.parse(inputs.route_files[0]).getroot() if v.tag == "vehicle"]
    persons = [p for p in ET.parse(inputs.route_files[1]).getroot() if p.tag == "person"]
    assert inputs.n_vehicles == len(vehicles) == pytest.approx(1200, abs=3)
    assert inputs.n_persons == len(persons) == pytest.approx(300, abs=3)
    departs = [float(v.get("depart")) for v in vehicles]
    assert departs == sorted(departs) and sc.begin_s <= departs[0] and departs[-1] < sc.end_s
    thirds = Counter(int((t - sc.begin_s) // 600) for t in departs)
    assert thirds[0] < thirds[1] < thirds[2]  # rising profile
    shares = Counter(v.get("type") for v in vehicles)
    for kind, share in sc.vehicle_mix.shares().items():
        assert shares[kind] / len(vehicles) == pytest.approx(share, abs=0.05)
    assert all(p.find("walk") is not None for p in persons)
    assert (inputs.begin, inputs.end, inputs.seed) == (sc.begin_s, sc.end_s, sc.seed)
    assert "--pedestrian.model" in inputs.extra_args


def test_zero_demand_writes_an_empty_route_file(grid_scenario, tmp_path: Path) -> None:
    sc = grid_scenario(demand={"veh_per_hour": 0})
    inputs = prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path)
    assert inputs.n_vehicles == 0 and inputs.route_files[0].is_file()


def test_builtin_scenario_compiles_on_the_zone(zone_net: Path, tmp_path: Path) -> None:
    sc = load_scenario(builtin_scenario())
    inputs = prepare_inputs(sc, net_file=zone_net, out_dir=tmp_path / "peak")
    assert inputs.n_vehicles == pytest.approx(8048, abs=10)
    assert inputs.n_persons == pytest.approx(2000, abs=20)
    assert (inputs.begin, inputs.end, inputs.seed) == (25200, 32400, 42)
    # The YAML's commented what-if names a real edge and real lanes of the zone.
    crash = sc.model_copy(update={"begin": 27900.0, "end": 28800.0})
    crash.incidents = [{"edge": "46_37", "lanes": [1, 2], "begin": "07:45", "end": "08:00"}]  # type: ignore[list-item]
    with_crash = prepare_inputs(crash, net_file=zone_net, out_dir=tmp_path / "crash")
    assert with_crash.additional_files[-1].name == "incidents.add.xml"
