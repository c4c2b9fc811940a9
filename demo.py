"""``roadtwin demo``: the main job on the built-in Yizhuang zone.

Builds the zone's network, then runs the 07:00-09:00 morning peak twice, side by side in two processes
(libsumo runs one simulation per process): under the zone's fixed-time signals and under the zone's best
controller (see README: "The zone's controllers"). Shows progress while they run, prints a comparison
table and writes a self-contained HTML report with plots into the workspace.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import Field

from roadtwin.config import StrictModel, load_options
from roadtwin.sim.backend import DEFAULT_BACKEND, Backend

__all__ = ["BEST_ZONE_CONTROLLER", "DemoOptions", "demo", "run_demo"]

ATTRIBUTION = (
    "Zone data © OpenStreetMap contributors, ODbL 1.0 (openstreetmap.org/copyright); network facts read off "
    "BUPT-ANTlab REG-TSC's new_yizhuang network. Simulation: Eclipse SUMO."
)

#: The controller with the lowest delay on the zone's morning peak in the zone evaluation (README).
BEST_ZONE_CONTROLLER = "max-pressure"

#: Metrics shown side by side in the demo's table and report.
SHOWN = (
    ("vehicles_scheduled", "vehicles scheduled"),
    ("vehicles_finished", "finished"),
    ("vehicles_still_running", "still running at the end"),
    ("vehicles_never_inserted", "never inserted"),
    ("exact_delay_s", "delay per vehicle, exact (s)"),
    ("resco_delay_s", "delay per vehicle, RESCO rule (s)"),
    ("mean_trip_time_s", "mean trip time (s)"),
    ("mean_wait_s", "mean waiting time (s)"),
    ("mean_stops", "mean stops"),
    ("throughput_veh_h", "throughput (veh/h)"),
    ("persons", "pedestrians"),
    ("mean_person_time_loss_s", "pedestrian delay (s)"),
    ("teleports", "teleports"),
)


class DemoOptions(StrictModel):
    """Options of ``roadtwin demo`` (also settable in a ``--config`` YAML file)."""

    workspace: Path = Path("roadtwin-data")
    backend: Backend = DEFAULT_BACKEND
    scenario: Path | None = None
    seed: int | None = None
    controller: str = BEST_ZONE_CONTROLLER
    serve: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)


def demo(
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="SUMO backend: libsumo (default) or traci.")] = None,
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario YAML (default: the zone's built-in morning peak).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    controller: Annotated[
        str | None,
        typer.Option(help=f"Controller compared with fixed-time (default {BEST_ZONE_CONTROLLER})."),
    ] = None,
    serve: Annotated[
        bool | None, typer.Option("--serve/--no-serve", help="Start the dashboard at the end (default on).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Dashboard address (default 127.0.0.1: this machine only).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Dashboard port (default 8050).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Build the Yizhuang zone, run its morning peak under fixed-time and the best controller, report.

    Ends by serving the dashboard over the workspace (Ctrl-C stops it); ``--no-serve`` for scripts.
    """
    opts = load_options(
        DemoOptions,
        config=config,
        workspace=workspace,
        backend=backend,
        scenario=scenario,
        seed=seed,
        controller=controller,
        serve=serve,
        host=host,
        port=port,
    )
    run_demo(opts)
    if opts.serve:
        from roadtwin.dashboards import serve as serve_dashboard

        serve_dashboard(workspace=opts.workspace, host=opts.host, port=opts.port)


def _run_one(
    scenario_path: str, seed: int | None, controller: str, workspace: str, backend: str, q: Any
) -> dict[str, Any]:
    """Child process: one morning-peak run; progress goes to the parent through ``q``."""
    from roadtwin.agents import make_controller
    from roadtwin.sim.run import run_scenario
    from roadtwin.sim.scenario import load_scenario
    from roadtwin.workspace import Workspace

    sc = load_scenario(scenario_path)
    if seed is not None:
        sc = sc.model_copy(update={"seed": seed})
    ctrl = None if controller == "fixed" else make_controller(controller)

    def progress(t: float, end: float, running: int) -> None:
        q.put((controller, t, end, running))

    result = run_scenario(
        sc,
        workspace=Workspace.at(workspace),
        backend=backend,
        controller=ctrl,
        progress=progress,  # type: ignore[arg-type]
    )
    return {
        "run_dir": str(result.run_dir),
        "metrics": result.metrics.as_dict(),
        "wall_time_s": result.wall_time_s,
        "sim_time_s": result.sim_time_s,
    }


def _run_side_by_side(
    jobs: list[str], *, args: tuple[Any, ...], console: Any, begin: float, end: float
) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` (controller names) in parallel processes with one progress display.

    ``args`` are :func:`_run_one`'s (scenario path, seed, workspace, backend) around the controller.
    """
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    ctx = mp.get_context("fork")
    manager = ctx.Manager()
    q = manager.Queue()
    results: dict[str, dict[str, Any]] = {}
    with (
        ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx) as pool,
        Progress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            TextColumn("{task.fields[running]} vehicles"),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        tasks = {j: bar.add_task(j, total=end - begin, clock="--:--", running=0) for j in jobs}
        scenario_path, seed, workspace, backend = args
        futures = {j: pool.submit(_run_one, scenario_path, seed, j, workspace, backend, q) for j in jobs}
        while any(not f.done() for f in futures.values()):
            try:
                name, t, _, running = q.get(timeout=0.2)
            except queue.Empty:
                continue
            clock = f"{int(t) // 3600:02d}:{int(t) % 3600 // 60:02d}"
            bar.update(tasks[name], completed=t - begin, clock=clock, running=running)
        for j, f in futures.items():
            results[j] = f.result()  # re-raises a child's error here
            bar.update(tasks[j], completed=end - begin)
    manager.shutdown()
    return results


def run_demo(opts: DemoOptions) -> Path:
    """Run the demo with ``opts``; return the path of the HTML report."""
    from rich.console import Console
    from rich.table import Table

    from roadtwin.agents import make_controller
    from roadtwin.maps import network_for, summarize_network
    from roadtwin.report import Report
    from roadtwin.sim.scenario import builtin_scenario, load_scenario
    from roadtwin.workspace import Workspace

    console = Console()
    ws = Workspace.at(opts.workspace)
    t0 = time.perf_counter()
    make_controller(opts.controller)  # a bad name fails here, before anything runs

    console.rule("[bold]RoadTwin demo: Yizhuang (Beijing E-Town) morning peak")
    net_file = network_for(workspace=ws, name="yizhuang")
    net = summarize_network(net_file)
    console.print(
        f"network: {net_file} ({net.junctions} junctions, {net.signals} signals, {net.edges} edges, "
        f"{net.km:.0f} km)"
    )
    scenario_path = Path(opts.scenario or builtin_scenario("yizhuang_morning_peak"))
    sc = load_scenario(scenario_path)
    jobs = ["fixed"] if opts.controller == "fixed" else ["fixed", opts.controller]
    console.print(f"scenario: {sc.name}: {sc.description.strip()}")
    console.print(f"running {len(jobs)} simulations side by side: {', '.join(jobs)}")

    results = _run_side_by_side(
        jobs,
        args=(str(scenario_path), opts.seed, str(ws.root), opts.backend),
        console=console,
        begin=sc.begin_s,
        end=sc.end_s,
    )

    table = Table(title=f"{sc.name}: fixed-time vs {opts.controller}" if len(jobs) > 1 else sc.name)
    table.add_column("metric")
    for j in jobs:
        table.add_column(j, justify="right")
    rows = []
    for key, label in SHOWN:
        values = [results[j]["metrics"].get(key) for j in jobs]
        rows.append((label, *values))
        table.add_row(label, *(_fmt(v) for v in values))
    console.print(table)

    report = Report(
        title="RoadTwin: Yizhuang morning peak",
        subtitle=f"scenario {sc.name}, seed {opts.seed if opts.seed is not None else sc.seed}, "
        f"backend {opts.backend}",
        footer=ATTRIBUTION,
    )
    summary = report.section(
        "Signal control: fixed-time against " + opts.controller if len(jobs) > 1 else "Fixed-time signals",
        f"{sc.description.strip()} Each run simulates {(sc.end_s - sc.begin_s) / 3600:.1f} h of the same "
        "demand (same seed).",
    )
    summary.tables.append((["metric", *jobs], rows))
    if len(jobs) > 1:
        summary.images.append(_comparison_plot(results, out=ws.reports / "demo-comparison.png"))
    for j in jobs:
        r = results[j]
        run_dir = Path(r["run_dir"])
        sec = report.section(
            f"{j}: network state",
            f"Run folder {run_dir}; simulated in {r['wall_time_s']:.0f} s "
            f"(real-time factor {r['sim_time_s'] / max(r['wall_time_s'], 1e-9):.0f}x).",
        )
        sec.images += [p for p in (run_dir / "network.png", run_dir / "plot.png") if p.exists()]
    out = report.write(ws.reports / "demo.html")
    console.print(f"report: {out}")
    console.print(f"done in {time.perf_counter() - t0:.0f} s")
    return out


def _comparison_plot(results: dict[str, dict[str, Any]], *, out: Path) -> Path:
    """Bars of the headline metrics and the vehicles in the network over time, one colour per controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from roadtwin._io import atomic_path
    from roadtwin.sim.metrics import read_summary

    names = list(results)
    metrics = [
        ("exact_delay_s", "delay (s)"),
        ("mean_trip_time_s", "trip time (s)"),
        ("mean_wait_s", "waiting (s)"),
        ("mean_stops", "stops"),
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
    x = np.arange(len(metrics))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [results[name]["metrics"].get(k) or 0.0 for k, _ in metrics]
        bars = ax1.bar(x + i * width, values, width, label=name)
        ax1.bar_label(bars, fmt="%.1f", fontsize=8)
        summary = read_summary(Path(results[name]["run_dir"]) / "summary.xml")
        ax2.plot(summary["time"] / 3600.0, summary["running"].rolling(300, min_periods=1).mean(), label=name)
    ax1.set_xticks(x + width * (len(names) - 1) / 2, [label for _, label in metrics])
    ax1.set_title("Per vehicle, same demand")
    ax1.legend()
    ax2.set(title="Vehicles in the network (5-min mean)", xlabel="time of day (h)", ylabel="vehicles")
    ax2.legend()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return "n/a" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
