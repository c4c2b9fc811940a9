"""Routing controllers: connected vehicles, the forecaster, and real runs with an incident on a grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from lxml import etree

from roadtwin.agents.evaluate import evaluate, routing_cells
from roadtwin.agents.routing import (
    EdgeTravelTimeForecaster,
    ForecastGuidance,
    ReroutingDevice,
    is_connected,
    make_router,
    router_names,
)
from roadtwin.errors import ConfigError
from roadtwin.workspace import Workspace

pytestmark = pytest.mark.timeout(300)


def test_connected_vehicles_are_a_stable_nested_share() -> None:
    ids = [f"veh{i}" for i in range(20_000)]
    for share in (0.1, 0.3, 0.6):
        picked = [v for v in ids if is_connected(v, penetration=share, seed=3)]
        assert abs(len(picked) / len(ids) - share) < 0.015
    low = {v for v in ids if is_connected(v, penetration=0.1, seed=3)}
    high = {v for v in ids if is_connected(v, penetration=0.3, seed=3)}
    assert low < high  # 10 % of the vehicles are among the 30 %
    other_seed = {v for v in ids if is_connected(v, penetration=0.3, seed=4)}
    assert other_seed != high
    assert not any(is_connected(v, penetration=0.0, seed=3) for v in ids[:100])
    assert all(is_connected(v, penetration=1.0, seed=3) for v in ids[:100])


def test_registry_and_bad_options() -> None:
    assert {"none", "rerouting", "guidance", "rl-routing"} <= set(router_names())
    assert isinstance(make_router("guidance", penetration=0.3, seed=1), ForecastGuidance)
    assert make_router("rerouting", penetration=0.3).label == "rerouting@30%"
    assert make_router("guidance", penetration=0.0).label == "none"
    with pytest.raises(ConfigError, match="routing"):
        make_router("teleport", penetration=0.3)
    with pytest.raises(ConfigError, match="penetration"):
        make_router("guidance", penetration=1.5)
    with pytest.raises(ConfigError, match="horizons"):
        make_router("guidance", penetration=0.3, horizons_min=[15, 30])


def test_routing_cells_run_none_once() -> None:
    cells = routing_cells(["none", "rerouting", "guidance"], [0.0, 0.1, 0.3])
    assert cells == [
        ("none", 0.0),
        ("rerouting", 0.1),
        ("rerouting", 0.3),
        ("guidance", 0.1),
        ("guidance", 0.3),
    ]
    with pytest.raises(ConfigError, match="penetration"):
        routing_cells(["guidance"], [-0.1])


def _forecaster(n: int = 2) -> EdgeTravelTimeForecaster:
    fc = EdgeTravelTimeForecaster(smoothing=1.0)
    fc.reset(
        edges=[f"e{i}" for i in range(n)],
        length_m=np.full(n, 1000.0),
        free_speed_ms=np.full(n, 15.0),
        lanes=np.full(n, 2.0),
    )
    return fc


def test_forecaster_follows_the_queue_trend() -> None:
    fc = _forecaster()
    # Edge 0's queue grows by 10 vehicles a minute, edge 1's shrinks.
    for k, t in enumerate((0.0, 60.0, 120.0)):
        halting = np.array([10.0 * k, 30.0 - 10.0 * k])
        fc.observe(time_s=t, vehicles=halting + 5, halting=halting, mean_speed_ms=np.array([3.0, 3.0]))
    now, h15, h30 = fc.forecast((0.0, 900.0, 1800.0))
    assert now[0] < h15[0] < h30[0]
    assert h30[1] < now[1]
    assert np.all(h30 >= 1000.0 / 15.0)  # never faster than free flow
    assert h30[0] <= fc.travel_time(fc.capacity)[0] + 1e-9  # never more queued than the edge holds


def test_forecaster_knows_when_an_incident_clears() -> None:
    fc = _forecaster()
    halting = np.array([20.0, 20.0])
    fc.observe(time_s=0.0, vehicles=2 * halting, halting=halting, mean_speed_ms=np.array([10.0, 10.0]))
    before = fc.forecast((0.0, 1800.0))
    fc.set_incidents(time_s=0.0, blocked_lanes=np.array([1.0, 0.0]), until_s=np.array([900.0, -np.inf]))
    now, later = fc.forecast((0.0, 1800.0))
    assert now[0] > before[0][0]  # half the discharge while the lane is blocked
    assert now[1] == pytest.approx(before[0][1])
    assert later[0] == pytest.approx(before[1][0])  # cleared by then


@pytest.fixture(scope="module")
def blocked_grid(small_grid_net: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten busy minutes on the 2 x 2 grid with one of the two lanes of road 3 -> 4 blocked from 07:01."""
    path = tmp_path_factory.mktemp("routing") / "grid_blocked.yaml"
    data = {
        "name": "grid_blocked",
        "network": str(small_grid_net),
        "begin": "07:00",
        "end": "07:10",
        "seed": 1,
        "demand": {"veh_per_hour": 1800, "min_distance": 300, "interval": 600},
        "vehicle_mix": {"car": 1.0, "bus": 0.0, "truck": 0.0, "av": 0.0},
        "incidents": [{"edge": "3_4", "lanes": [1], "begin": "07:01", "end": "07:10"}],
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


#: The two-route network: a -> b, then b -> c (500 m, the short way) or b -> d -> c (707 m), then c -> e.
_NODES = {"a": (0, 0), "b": (200, 0), "c": (700, 0), "d": (450, 250), "e": (900, 0)}
_EDGES = ("a_b", "b_c", "b_d", "d_c", "c_e")
_BEGIN, _END = 0.0, 900.0


@pytest.fixture(scope="module")
def two_routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two ways from b to c, 2,400 veh/h all routed the short way, one of its two lanes blocked from 60 s."""
    from roadtwin.sim.incidents import Closure, write_closures
    from roadtwin.toolchain import binary, run_tool

    folder = tmp_path_factory.mktemp("two_routes")
    nod, edg, net = folder / "r.nod.xml", folder / "r.edg.xml", folder / "r.net.xml"
    nod.write_text(
        "<nodes>\n"
        + "".join(f'  <node id="{n}" x="{x}" y="{y}" type="priority"/>\n' for n, (x, y) in _NODES.items())
        + "</nodes>\n"
    )
    edg.write_text(
        "<edges>\n"
        + "".join(
            # c -> e has a pair of lanes for each way in: the two ways join without yielding.
            f'  <edge id="{e}" from="{e[0]}" to="{e[2]}" numLanes="{4 if e == "c_e" else 2}" speed="13.89"/>\n'
            for e in _EDGES
        )
        + "</edges>\n"
    )
    run_tool([binary("netconvert"), "-n", nod, "-e", edg, "--no-turnarounds", "-o", net], what="netconvert")
    routes = folder / "r.rou.xml"
    vehicles = "".join(
        f'  <vehicle id="v{i}" depart="{i * 1.5:.1f}" departLane="best" departSpeed="max" route="short"/>\n'
        for i in range(int(600 / 1.5))
    )
    routes.write_text(f'<routes>\n  <route id="short" edges="a_b b_c c_e"/>\n{vehicles}</routes>\n')
    incident = write_closures(
        folder / "incident.add.xml",
        net_file=net,
        closures=[Closure(edge="b_c", lanes=(0,), begin=60.0, end=_END, before_end=100.0)],
        edge_lengths={"b_c": 500.0},
    )
    return {"net": net, "routes": routes, "incident": incident}


def _run(two_routes: dict[str, Path], workspace: Path, router: str, share: float) -> tuple[Any, Any]:
    from roadtwin.agents.base import make_controller
    from roadtwin.agents.combined import CombinedControl
    from roadtwin.sim.inputs import SimInputs
    from roadtwin.sim.run import run_inputs

    control = CombinedControl(make_controller("fixed"), make_router(router, penetration=share, seed=1))
    inputs = SimInputs(
        net_file=two_routes["net"],
        route_files=(two_routes["routes"],),
        additional_files=(two_routes["incident"],),
        begin=_BEGIN,
        end=_END,
        seed=1,
        n_vehicles=400,
    )
    result = run_inputs(
        lambda _out: inputs, name="two_routes", seed=1, config={}, workspace=Workspace.at(workspace),
        controller=control, progress=False, report=False,
    )  # fmt: skip
    return result, control


def _entered(run_dir: Path, edge: str) -> float:
    root = etree.parse(str(run_dir / "edgedata.xml")).getroot()
    return sum(float(e.get("entered", 0)) for iv in root for e in iv if e.get("id") == edge)


def test_guidance_and_the_device_take_the_detour_around_an_incident(
    two_routes: dict[str, Path], tmp_path: Path
) -> None:
    none, _ = _run(two_routes, tmp_path, "none", 0.0)
    device, _ = _run(two_routes, tmp_path, "rerouting", 1.0)
    guided, guidance = _run(two_routes, tmp_path, "guidance", 1.0)
    half, _ = _run(two_routes, tmp_path, "guidance", 0.5)
    # Fixed routes all queue at the blocked lane; routed vehicles spread over both ways.
    assert _entered(none.run_dir, "b_d") == 0
    assert _entered(device.run_dir, "b_d") > 20
    assert _entered(guided.run_dir, "b_d") > 20
    assert guidance.router.reroutes > 20
    trip = {
        k: r.metrics.mean_trip_time_s
        for k, r in (("none", none), ("device", device), ("guided", guided), ("half", half))
    }
    assert trip["guided"] < 0.85 * trip["none"], trip
    assert trip["device"] < trip["none"], trip
    # Half the vehicles connected already empty the blocked lane's queue (the detour has room for them).
    assert trip["half"] < 0.85 * trip["none"], trip
    config = yaml.safe_load((guided.run_dir / "config.yaml").read_text())
    assert config["run"]["controller"] == "fixed+guidance100"
    assert config["run"]["controller_options"]["routing"]["name"] == "guidance"


def test_evaluate_runs_every_router_beside_every_signal_controller(
    blocked_grid: Path, tmp_path: Path
) -> None:
    result = evaluate(
        scenario=str(blocked_grid),
        controllers=["fixed"],
        seeds=[1],
        workspace=Workspace.at(tmp_path / "ws"),
        routing=["none", "guidance"],
        penetrations=[0.0, 1.0],
        progress=False,
    )
    table = result.results.set_index("controller")
    assert list(table.index) == ["fixed", "fixed+guidance@100%"]
    assert list(table["routing"]) == ["none", "guidance"]
    assert list(table["penetration"]) == [0.0, 1.0]
    assert Path(table.loc["fixed+guidance@100%", "run_dir"]).name.startswith(
        "grid_blocked__fixed-guidance100__1__"
    )
    run_config = yaml.safe_load(
        (Path(table.loc["fixed+guidance@100%", "run_dir"]) / "config.yaml").read_text()
    )
    assert run_config["evaluation"] == {
        "controller_spec": "fixed",
        "routing_spec": "guidance",
        "penetration": 1.0,
    }
    saved = pd.read_csv(result.folder / "results.csv")
    assert list(saved["controller"]) == list(table.index)
    assert (result.folder / "delay.png").is_file()


def test_rerouting_device_equips_exactly_the_connected_vehicles(blocked_grid: Path, tmp_path: Path) -> None:
    from roadtwin.agents.scenarios import resolve_scenario

    resolved = resolve_scenario(str(blocked_grid), workspace=Workspace.at(tmp_path / "ws"))
    inputs = resolved.make_inputs(tmp_path / "inputs", 1)
    device = ReroutingDevice(penetration=0.3, seed=1)
    prepared = device.prepare(inputs, work_dir=tmp_path)
    args = list(prepared.extra_args)
    explicit = args[args.index("--device.rerouting.explicit") + 1].split(",")
    assert explicit == device.equipped
    assert explicit and all(is_connected(v, penetration=0.3, seed=1) for v in explicit)
    assert 0.15 < len(explicit) / inputs.n_vehicles < 0.45
    assert ReroutingDevice(penetration=0.0).prepare(inputs, work_dir=tmp_path) is inputs


def test_eval_cli_routing_options(
    blocked_grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from roadtwin.cli import main as cli_main

    code = cli_main(
        ["agents", "eval", "--scenario", str(blocked_grid), "-c", "fixed", "--routing", "warp", "-p", "0.3",
         "--seeds", "1", "--workspace", str(tmp_path)]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "routing" in err[0] and "guidance" in err[0]
    code = cli_main(
        ["agents", "eval", "--scenario", str(blocked_grid), "-c", "fixed", "--routing", "guidance", "-p", "2",
         "--seeds", "1", "--workspace", str(tmp_path)]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "penetration" in err[0]
