"""Scenario YAML: the built-in scenario, round trips, one-line errors for bad input, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roadtwin.errors import ScenarioError
from roadtwin.sim.inputs import prepare_inputs
from roadtwin.sim.scenario import (
    Scenario,
    builtin_scenario,
    builtin_scenarios,
    format_time,
    load_scenario,
    parse_time,
)

GOOD = {
    "name": "grid_peak",
    "network": "grid.net.xml",
    "begin": "07:00",
    "end": "07:30",
    "seed": 3,
    "demand": {
        "veh_per_hour": 1500,
        "profile": [{"at": "07:00", "factor": 0.8}, {"at": "07:15", "factor": 1.0}],
        "interval": 300,
    },
    "vehicle_mix": {"car": 0.8, "bus": 0.03, "truck": 0.07, "av": 0.1},
    "automation": {"model": "ACC", "time_gap": 1.2},
    "pedestrians": {"per_hour": 200},
    "weather": {"condition": "snow", "intensity": "heavy"},
    "incidents": [
        {"edge": "1_2", "lanes": [1], "begin": "07:05", "end": "07:20", "description": "crash"},
        {"edge": "2_4", "begin": 25800, "end": "07:25:30"},
    ],
}


def _write(folder: Path, data: dict, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture()
def scenario_dir(tmp_path: Path, small_grid_net: Path) -> Path:
    """A folder with the small grid next to where the scenario YAML goes (``network: grid.net.xml``)."""
    (tmp_path / "grid.net.xml").write_bytes(small_grid_net.read_bytes())
    return tmp_path


def test_builtin_scenario_loads_with_a_documented_morning_peak() -> None:
    assert "yizhuang_morning_peak" in builtin_scenarios()
    path = builtin_scenario()
    sc = load_scenario(path)
    assert (sc.name, sc.network, sc.seed) == ("yizhuang_morning_peak", "yizhuang", 42)
    assert (sc.begin_s, sc.end_s) == (7 * 3600, 9 * 3600)
    assert sc.source == path
    peak = max(p.factor for p in sc.demand.profile)
    assert peak == 1.0 and sc.vehicle_mix.av == pytest.approx(0.1) and sc.automation.model == "CACC"
    text = path.read_text(encoding="utf-8")
    assert "8,050 vehicles" in text and "veh/h/lane" in text  # total demand and its capacity arithmetic


def test_unknown_builtin_scenario_is_a_one_line_error() -> None:
    with pytest.raises(ScenarioError, match="built-in scenario") as err:
        builtin_scenario("nope")
    assert "\n" not in str(err.value)


def test_round_trip_through_yaml(scenario_dir: Path, tmp_path: Path) -> None:
    first = load_scenario(_write(scenario_dir, GOOD))
    dumped = first.model_dump(mode="json")
    assert dumped["begin"] == "07:00" and dumped["incidents"][1]["begin"] == "07:10"
    assert dumped["incidents"][1]["end"] == "07:25:30" and "source" not in dumped and "_source" not in dumped
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    second = load_scenario(_write(elsewhere, dumped))
    assert second.model_dump(mode="json") == dumped


def test_relative_network_resolves_against_the_yaml_folder(scenario_dir: Path) -> None:
    sc = load_scenario(_write(scenario_dir, GOOD))
    assert Path(sc.network) == (scenario_dir / "grid.net.xml").resolve()


def test_weather_as_a_bare_string_and_times_in_every_form() -> None:
    sc = Scenario.model_validate(
        {**GOOD, "weather": "rain", "begin": 25200, "end": "7:30:00", "incidents": []}
    )
    assert (sc.weather.condition, sc.weather.effective_intensity()) == ("rain", "moderate")
    assert (sc.begin_s, sc.end_s) == (25200.0, 27000.0)
    assert (
        parse_time("08:15:30") == 29730 and format_time(29730) == "08:15:30" and format_time(28800) == "08:00"
    )


def _bad(**changes: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[leaf] = value
    return data


BAD_CASES = [
    # (id, data, field named in the message, expectation named in the message)
    ("wrong type", _bad(seed="forty-two"), "seed", "valid integer"),
    ("unknown field", {**GOOD, "colour": "red"}, "colour", "unknown field"),
    ("unknown nested field", _bad(demand__peak=3), "demand.peak", "unknown field"),
    ("negative demand", _bad(demand__veh_per_hour=-100), "demand.veh_per_hour", ">= 0"),
    ("negative walkers", _bad(pedestrians__per_hour=-5), "pedestrians.per_hour", ">= 0"),
    ("end before begin", _bad(end="06:30"), "end", "a time after begin (07:00)"),
    ("end equals begin", _bad(end="07:00"), "end", "a time after begin"),
    ("bad time", _bad(begin="7 am"), "begin", "HH:MM"),
    ("shares do not sum to 1", _bad(vehicle_mix__car=0.5), "vehicle_mix", "sum to 1"),
    ("share above 1", _bad(vehicle_mix__av=1.5), "vehicle_mix.av", "between 0 and 1"),
    ("incident before the window", _bad(incidents__0__begin="06:50"), "incidents.0.begin", "scenario window"),
    ("incident after the window", _bad(incidents__1__end="07:45"), "incidents.1.end", "scenario window"),
    ("incident ends before it starts", _bad(incidents__0__end="07:01"), "incidents.0.end", "after begin"),
    ("incident lanes", _bad(incidents__0__lanes=[1, 1]), "incidents.0.lanes", "distinct"),
    ("unknown weather", _bad(weather="hail"), "weather.condition", "'rain'"),
    (
        "fog has one intensity",
        _bad(weather={"condition": "fog", "intensity": "heavy"}),
        "weather.intensity",
        "fog",
    ),
    (
        "profile out of order",
        _bad(demand__profile=[{"at": "07:20", "factor": 1}, {"at": "07:10", "factor": 1}]),
        "demand.profile.1.at",
        "after the previous point",
    ),
    ("two demand levels", _bad(demand__total_vehicles=900), "demand", "exactly one of"),
    ("AV gap below the step", _bad(automation__time_gap=0.5), "automation.time_gap", "step_length"),
    ("AV model", _bad(automation__model="IDM"), "automation.model", "'CACC'"),
    ("missing network file", _bad(network="missing.net.xml"), "network", "existing .net.xml"),
    ("not a network", _bad(network="grid.osm"), "network", "yizhuang"),
    ("missing field", {k: v for k, v in GOOD.items() if k != "demand"}, "demand", "required"),
]


@pytest.mark.parametrize(
    ("data", "field", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_scenario_is_one_line_naming_file_field_and_expectation(
    scenario_dir: Path, data: dict, field: str, expected: str
) -> None:
    path = _write(scenario_dir, data, name="bad_scenario.yaml")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert "bad_scenario.yaml" in msg
    assert f": {field}: expected" in msg
    assert expected in msg
    assert err.value.exit_code == 2


def test_yaml_that_is_not_a_mapping_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"list\.yaml: expected a YAML mapping"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"end": "06:00"}, "end", "a time after begin"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_cli_prints_one_line_and_exits_2(
    scenario_dir: Path, capsys: pytest.CaptureFixture[str], changes: dict, field: str, expected: str
) -> None:
    from roadtwin.cli import main

    path = _write(scenario_dir, {**GOOD, **changes}, name="cli_bad.yaml")
    code = main(["sim", "run", str(path), "--workspace", str(scenario_dir / "ws"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "cli_bad.yaml" in err and field in err and expected in err


def test_incident_on_a_missing_edge_names_file_field_and_network(
    scenario_dir: Path, small_grid_net: Path
) -> None:
    path = _write(scenario_dir, _bad(incidents__1__edge="99_98"), name="bad_edge.yaml")
    sc = load_scenario(path)  # the YAML itself is fine; the network decides
    with pytest.raises(ScenarioError) as err:
        prepare_inputs(sc, net_file=small_grid_net, out_dir=scenario_dir / "inputs")
    msg = str(err.value)
    assert "bad_edge.yaml: incidents.1.edge: expected an edge id of the network grid.net.xml" in msg
    assert "'99_98'" in msg and "\n" not in msg
    assert not (scenario_dir / "inputs" / "vehicles.rou.xml").exists()


def test_incident_on_a_sidewalk_or_missing_lane_is_rejected(scenario_dir: Path, small_grid_net: Path) -> None:
    for lane in (0, 7):
        sc = load_scenario(_write(scenario_dir, _bad(incidents__0__lanes=[1, lane]), name="bad_lane.yaml"))
        with pytest.raises(
            ScenarioError, match=r"incidents\.0\.lanes\.1: expected a vehicle lane index of edge 1_2"
        ):
            prepare_inputs(sc, net_file=small_grid_net, out_dir=scenario_dir / "inputs")


def test_walkers_need_sidewalks_and_crossings(scenario_dir: Path, plain_net: Path) -> None:
    sc = load_scenario(_write(scenario_dir, {**GOOD, "incidents": []}, name="walkers.yaml"))
    with pytest.raises(ScenarioError) as err:
        prepare_inputs(sc, net_file=plain_net, out_dir=scenario_dir / "inputs")
    msg = str(err.value)
    assert "walkers.yaml: pedestrians" in msg and "no sidewalks and crossings" in msg


def test_same_seed_same_tripinfo(grid_scenario, run_sumo, tmp_path: Path) -> None:
    sc = grid_scenario(
        vehicle_mix={"car": 0.8, "bus": 0.03, "truck": 0.07, "av": 0.1},
        pedestrians={"per_hour": 300},
        weather="rain",
        incidents=[{"edge": "1_2", "lanes": [1], "begin": "07:02", "end": "07:08"}],
    )
    runs = [run_sumo(prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path / f"r{i}"), tmp_path / f"r{i}")
            for i in range(2)]  # fmt: skip
    assert len(runs[0]) > 300
    assert runs[0] == runs[1]
