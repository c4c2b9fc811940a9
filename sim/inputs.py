"""A scenario compiled into SUMO's inputs: vTypes, routed vehicles and walkers, incidents, options.

:func:`prepare_inputs` checks the scenario against the network (incident edges and lanes exist,
walkers have sidewalks and crossings) and writes every file atomically under one folder:

- ``vtypes.add.xml``: the fleet's vTypes (weather applied) and the ``mix`` distribution;
- ``vehicles.rou.xml``: routed vehicles of the time-of-day demand;
- ``persons.rou.xml``: routed walks (only when the scenario has walkers);
- ``incidents.add.xml``: lane blockages and road closures (only when it has incidents).

The runner starts SUMO with ``-n net -r routes... -a additionals... -b begin -e end --seed seed``
plus :attr:`SimInputs.extra_args`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from roadtwin.errors import ScenarioError
from roadtwin.sim.demand import interval_rates, write_vehicle_routes
from roadtwin.sim.incidents import Closure, needs_ignore_route_errors, write_closures
from roadtwin.sim.pedestrians import pedestrian_network_problem, pedestrian_options, write_person_routes
from roadtwin.sim.scenario import Scenario
from roadtwin.sim.vehicles import write_vtypes
from roadtwin.sim.weather import weather_effect
from roadtwin.toolchain import ensure_sumo

__all__ = ["SimInputs", "prepare_inputs"]


@dataclass(frozen=True)
class SimInputs:
    """Everything SUMO needs to run one scenario.

    Attributes
    ----------
    net_file
        The network.
    route_files
        Vehicles, then persons.
    additional_files
        vTypes, then incidents.
    begin, end
        The window in s.
    seed
        SUMO's ``--seed``.
    extra_args
        Further SUMO options the scenario needs (step length, pedestrian model, route-error handling).
    n_vehicles, n_persons
        Vehicles and persons scheduled to depart in the window (to count those never inserted).
    """

    net_file: Path
    route_files: tuple[Path, ...]
    additional_files: tuple[Path, ...]
    begin: float
    end: float
    seed: int
    extra_args: tuple[str, ...] = ()
    n_vehicles: int = 0
    n_persons: int = 0


def _closures(scenario: Scenario, net_file: Path) -> tuple[list[Closure], dict[str, float]]:
    """Check the incidents against the network; return them as closures with their edges' lengths."""
    ensure_sumo()
    import sumolib

    net = sumolib.net.readNet(str(net_file))
    closures: list[Closure] = []
    lengths: dict[str, float] = {}
    for i, inc in enumerate(scenario.incidents):
        if not net.hasEdge(inc.edge):
            raise ScenarioError(
                path=scenario.source,
                field=f"incidents.{i}.edge",
                expected=f"an edge id of the network {net_file.name}",
                got=inc.edge,
            )
        edge = net.getEdge(inc.edge)
        road = [lane.getIndex() for lane in edge.getLanes() if lane.getPermissions() != {"pedestrian"}]
        lanes: tuple[int, ...] | None = None
        if inc.lanes != "all":
            for j, index in enumerate(inc.lanes):
                if index not in road:
                    raise ScenarioError(
                        path=scenario.source,
                        field=f"incidents.{i}.lanes.{j}",
                        expected=f"a vehicle lane index of edge {inc.edge} ({', '.join(map(str, road))})",
                        got=index,
                    )
            if set(inc.lanes) != set(road):
                lanes = tuple(sorted(inc.lanes))
        closures.append(
            Closure(edge=inc.edge, lanes=lanes, begin=inc.begin, end=inc.end, before_end=inc.before_end)
        )
        lengths[inc.edge] = edge.getLength()
    return closures, lengths


def prepare_inputs(
    scenario: Scenario, *, net_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> SimInputs:
    """Check ``scenario`` against ``net_file`` and write SUMO's inputs under ``out_dir``.

    Parameters
    ----------
    scenario
        A validated scenario.
    net_file
        The network to simulate (the runner resolves ``scenario.network`` to it).
    out_dir
        Folder for the generated files (created if needed).

    Returns
    -------
    SimInputs
        Paths, window, seed and options for SUMO.

    Raises
    ------
    ScenarioError
        An incident on an edge or lane the network lacks, or walkers on a network without sidewalks
        or crossings (named after the scenario file and field).
    SimulationError
        A SUMO tool failed.
    """
    net = Path(net_file).resolve()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    closures, lengths = _closures(scenario, net)
    walkers = scenario.pedestrians.per_hour > 0
    if walkers:
        missing = pedestrian_network_problem(net)
        if missing:
            raise ScenarioError(
                path=scenario.source,
                field="pedestrians.per_hour",
                expected=f"0 on network {net.name}, which has no {missing} for walkers",
                got=scenario.pedestrians.per_hour,
            )

    weather = weather_effect(scenario.weather.condition, scenario.weather.effective_intensity())
    vtypes = write_vtypes(
        out / "vtypes.add.xml",
        shares=scenario.vehicle_mix.shares(),
        weather=weather,
        av_model=scenario.automation.model,
        av_time_gap=scenario.automation.effective_time_gap(),
        av_parameters=scenario.automation.parameters,
    )
    demand = scenario.demand
    rates = interval_rates(
        begin=scenario.begin_s,
        end=scenario.end_s,
        interval=demand.interval,
        veh_per_hour=demand.veh_per_hour,
        total_vehicles=demand.total_vehicles,
        profile=demand.points(),
    )
    vehicles = out / "vehicles.rou.xml"
    n_vehicles = write_vehicle_routes(
        vehicles,
        net_file=net,
        vtypes_file=vtypes,
        begin=scenario.begin_s,
        end=scenario.end_s,
        rates=rates,
        seed=scenario.seed,
        fringe_factor=demand.fringe_factor,
        min_distance=demand.min_distance,
        label=scenario.name,
    )
    routes = [vehicles]
    extra: list[str] = ["--step-length", f"{scenario.step_length:g}"]
    n_persons = 0
    if walkers:
        persons = out / "persons.rou.xml"
        n_persons = write_person_routes(
            persons,
            net_file=net,
            begin=scenario.begin_s,
            end=scenario.end_s,
            per_hour=scenario.pedestrians.per_hour,
            seed=scenario.seed + 1,
            min_distance=scenario.pedestrians.min_distance,
            max_distance=scenario.pedestrians.max_distance,
            label=scenario.name,
        )
        routes.append(persons)
        extra.extend(pedestrian_options())
    additionals = [vtypes]
    if closures:
        additionals.append(
            write_closures(out / "incidents.add.xml", net_file=net, closures=closures, edge_lengths=lengths)
        )
        if needs_ignore_route_errors(closures):
            extra.append("--ignore-route-errors")
    return SimInputs(
        net_file=net,
        route_files=tuple(routes),
        additional_files=tuple(additionals),
        begin=scenario.begin_s,
        end=scenario.end_s,
        seed=scenario.seed,
        extra_args=tuple(extra),
        n_vehicles=n_vehicles,
        n_persons=n_persons,
    )
