"""``roadtwin demo``: the main job on the built-in Yizhuang zone.

Builds the zone's network, runs the 07:00-09:00 morning peak under the zone's fixed-time signals with a
progress bar, prints a summary table and writes a self-contained HTML report into the workspace.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from roadtwin.config import StrictModel, load_options
from roadtwin.sim.backend import DEFAULT_BACKEND, Backend

__all__ = ["DemoOptions", "demo", "run_demo"]

ATTRIBUTION = (
    "Zone data © OpenStreetMap contributors, ODbL 1.0 (openstreetmap.org/copyright); network facts read off "
    "BUPT-ANTlab REG-TSC's new_yizhuang network. Simulation: Eclipse SUMO."
)


class DemoOptions(StrictModel):
    """Options of ``roadtwin demo`` (also settable in a ``--config`` YAML file)."""

    workspace: Path = Path("roadtwin-data")
    backend: Backend = DEFAULT_BACKEND
    scenario: Path | None = None
    seed: int | None = None


def demo(
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="SUMO backend: libsumo (default) or traci.")] = None,
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario YAML (default: the zone's built-in morning peak).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Build the Yizhuang zone, run its morning peak under fixed-time signals, write an HTML report."""
    opts = load_options(
        DemoOptions, config=config, workspace=workspace, backend=backend, scenario=scenario, seed=seed
    )
    run_demo(opts)


def run_demo(opts: DemoOptions) -> Path:
    """Run the demo with ``opts``; return the path of the HTML report."""
    from rich.console import Console

    from roadtwin.maps import load_net, network_for
    from roadtwin.report import Report
    from roadtwin.sim.commands import print_metrics
    from roadtwin.sim.run import run_scenario
    from roadtwin.sim.scenario import builtin_scenario, load_scenario
    from roadtwin.workspace import Workspace

    console = Console(stderr=False)
    ws = Workspace.at(opts.workspace)
    t0 = time.perf_counter()

    console.rule("[bold]RoadTwin demo: Yizhuang (Beijing E-Town) morning peak")
    net_file = network_for(workspace=ws, name="yizhuang")
    net = load_net(net_file)
    n_tls = len(net.getTrafficLights())
    console.print(
        f"network: {net_file} ({len(net.getNodes())} junctions, {n_tls} signals, {len(net.getEdges())} edges)"
    )

    sc = load_scenario(opts.scenario or builtin_scenario("yizhuang_morning_peak"))
    if opts.seed is not None:
        sc = sc.model_copy(update={"seed": opts.seed})
    result = run_scenario(sc, workspace=ws, backend=opts.backend, progress=True)
    m = result.metrics.as_dict()
    print_metrics(console, m, title=f"{sc.name}: fixed-time signals")

    report = Report(
        title="RoadTwin: Yizhuang morning peak",
        subtitle=f"scenario {sc.name}, seed {sc.seed}, backend {opts.backend}",
        footer=ATTRIBUTION,
    )
    sec = report.section(
        "Fixed-time signals",
        f"{sc.description.strip()} Simulated {result.sim_time_s / 3600:.1f} h in {result.wall_time_s:.1f} s "
        f"(real-time factor {result.real_time_factor:.0f}x). Run folder: {result.run_dir}.",
    )
    sec.add_mapping(m)
    sec.images.append(result.run_dir / "plot.png")
    for extra in ("network.png",):
        if (result.run_dir / extra).exists():
            sec.images.append(result.run_dir / extra)
    out = report.write(ws.reports / "demo.html")
    console.print(f"report: {out}")
    console.print(f"done in {time.perf_counter() - t0:.0f} s")
    return out
