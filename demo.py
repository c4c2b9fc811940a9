"""``roadtwin demo``: the main job on the built-in Yizhuang zone.

Builds the zone's network, then runs the 07:00-09:00 morning peak twice, side by side in two processes
(libsumo runs one simulation per process): under the zone's fixed-time signals and under the zone's best
controller (see README: "The zone's controllers"). The fixed-time run is the twin's observed day: a third
process replays its traffic with the zone's sensors attached (alongside the runs); the feeds go into
the workspace's store, the state of every edge is estimated, forecasts 15/30/60 minutes ahead are issued
every 5 minutes and scored against the state they predicted (:func:`roadtwin.twin.replay.replay_day`).
Shows progress while they run, prints comparison tables and writes a self-contained HTML report with
plots into the workspace; the dashboard's Forecast and Network pages read the store.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import Field

from roadtwin.agents.rl import BEST_ZONE_CONTROLLER
from roadtwin.config import StrictModel, load_options
from roadtwin.sim.backend import DEFAULT_BACKEND, Backend

__all__ = ["BEST_ZONE_CONTROLLER", "DemoOptions", "demo", "run_demo"]

ATTRIBUTION = (
    "Zone data © OpenStreetMap contributors, ODbL 1.0 (openstreetmap.org/copyright); network facts read off "
    "BUPT-ANTlab REG-TSC's new_yizhuang network. Simulation: Eclipse SUMO."
)


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
    routing: str = "none"
    penetration: float = Field(default=0.3, gt=0, le=1)
    twin: bool = True
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
    routing: Annotated[
        str | None,
        typer.Option(
            help="Route guidance: none (default), guidance (forecast-aware) or rerouting (SUMO's device); "
            "adds a third run: the compared controller with it."
        ),
    ] = None,
    penetration: Annotated[
        float | None, typer.Option(help="Share of connected vehicles that follow the guidance (0.3).")
    ] = None,
    twin: Annotated[
        bool | None,
        typer.Option(
            "--twin/--no-twin",
            help="Sense the fixed-time run, estimate its state and forecast it into the store (default on).",
        ),
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
        routing=routing,
        penetration=penetration,
        twin=twin,
        serve=serve,
        host=host,
        port=port,
    )
    run_demo(opts)
    if opts.serve:
        from roadtwin.dashboards import serve as serve_dashboard

        serve_dashboard(workspace=opts.workspace, host=opts.host, port=opts.port)


#: Name of the progress line of the fixed-time run's sensor feeds.
SENSORS = "sensor feeds"


def _run_one(
    scenario_path: str, seed: int | None, controller: str, workspace: str, backend: str, q: Any
) -> dict[str, Any]:
    """Child process: one morning-peak run; progress goes to the parent through ``q``."""
    from roadtwin.sim.run import run_scenario
    from roadtwin.sim.scenario import load_scenario
    from roadtwin.workspace import Workspace

    sc = load_scenario(scenario_path)
    if seed is not None:
        sc = sc.model_copy(update={"seed": seed})
    ctrl = _controller(controller, seed=sc.seed)

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


def _controller(job: str, *, seed: int) -> Any:
    """The controller of a demo job: ``NAME`` or ``NAME+ROUTING@P`` (a routing controller beside it)."""
    from roadtwin.agents import make_controller
    from roadtwin.agents.combined import CombinedControl
    from roadtwin.agents.routing import make_router

    name, _, routed = job.partition("+")
    if not routed:
        return None if name == "fixed" else make_controller(name)
    routing, _, share = routed.partition("@")
    router = make_router(routing, penetration=float(share.rstrip("%")) / 100, seed=seed)
    return CombinedControl(make_controller(name), router)


def _sense_one(run_dir: str, q: Any) -> dict[str, Any]:
    """Child process: the sensor feeds of a run (its own libsumo); progress goes to ``q``."""
    from roadtwin.twin.sensors import sense

    def progress(t: float, end: float, running: int) -> None:
        q.put((SENSORS, t, end, running))

    feeds = sense(run_dir, progress=progress)
    return {"rows": feeds.rows, "day": feeds.day.isoformat(), "wall_time_s": feeds.wall_time_s}


def _new_fixed_run(runs: Path, before: set[str]) -> Path | None:
    """The fixed-time run folder this demo started, once its inputs and ``config.yaml`` are written."""
    if not runs.is_dir():
        return None
    for folder in runs.iterdir():
        parts = folder.name.split("__")
        fresh = folder.name not in before and len(parts) > 1 and parts[1] == "fixed"
        if fresh and (folder / "config.yaml").is_file():
            return folder
    return None


def _run_side_by_side(
    jobs: list[str], *, args: tuple[Any, ...], console: Any, begin: float, end: float, sense: bool = False
) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` (controller names) in parallel processes with one progress display.

    ``args`` are :func:`_run_one`'s (scenario path, seed, workspace, backend) around the controller.
    With ``sense``, the fixed-time run's sensor feeds are written by a third process that starts as soon
    as the run's inputs exist: it replays the same traffic with the sensors attached, alongside the runs
    (``results["fixed"]["sense"]``).
    """
    from concurrent.futures import Future, ProcessPoolExecutor

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    ctx = mp.get_context("fork")
    manager = ctx.Manager()
    q = manager.Queue()
    results: dict[str, dict[str, Any]] = {}
    scenario_path, seed, workspace, backend = args
    runs = Path(workspace) / "runs"
    before = {p.name for p in runs.iterdir()} if runs.is_dir() else set()
    with (
        ProcessPoolExecutor(max_workers=len(jobs) + int(sense), mp_context=ctx) as pool,
        Progress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            TextColumn("{task.fields[running]} vehicles"),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        lines = [*jobs, SENSORS] if sense else jobs
        tasks = {j: bar.add_task(j, total=end - begin, clock="--:--", running=0) for j in lines}
        futures: dict[str, Future[dict[str, Any]]] = {
            j: pool.submit(_run_one, scenario_path, seed, j, workspace, backend, q) for j in jobs
        }
        while any(not f.done() for f in futures.values()) or (sense and SENSORS not in futures):
            if sense and SENSORS not in futures:
                run_dir = _new_fixed_run(runs, before)
                if run_dir is not None:
                    futures[SENSORS] = pool.submit(_sense_one, str(run_dir), q)
                elif futures["fixed"].done():
                    futures["fixed"].result()  # the run failed before writing its inputs: raise here
                    futures[SENSORS] = pool.submit(_sense_one, futures["fixed"].result()["run_dir"], q)
            try:
                name, t, _, running = q.get(timeout=0.2)
            except queue.Empty:
                continue
            clock = f"{int(t) // 3600:02d}:{int(t) % 3600 // 60:02d}"
            bar.update(tasks[name], completed=t - begin, clock=clock, running=running)
        for j in jobs:
            results[j] = futures[j].result()  # re-raises a child's error here
            bar.update(tasks[j], completed=end - begin)
        if sense:
            results["fixed"]["sense"] = futures[SENSORS].result()
            bar.update(tasks[SENSORS], completed=end - begin)
    manager.shutdown()
    return results


def run_demo(opts: DemoOptions) -> Path:
    """Run the demo with ``opts``; return the path of the HTML report."""
    from rich.console import Console
    from rich.table import Table

    from roadtwin.agents import check_controller
    from roadtwin.maps import network_for, summarize_network
    from roadtwin.report import Report
    from roadtwin.sim.scenario import builtin_scenario, load_scenario
    from roadtwin.workspace import Workspace

    console = Console()
    ws = Workspace.at(opts.workspace)
    t0 = time.perf_counter()
    # A bad name fails here, before anything runs; no policy loads in this process (the runs fork from
    # it, and a child forked from a process that has run torch hangs).
    check_controller(opts.controller)
    if opts.routing != "none":
        from roadtwin.agents.routing import make_router

        make_router(opts.routing, penetration=opts.penetration)

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
    if opts.routing != "none":
        jobs.append(f"{opts.controller}+{opts.routing}@{opts.penetration * 100:g}%")
    console.print(f"scenario: {sc.name}: {sc.description.strip()}")
    console.print(f"running {len(jobs)} simulations side by side: {', '.join(jobs)}")

    results = _run_side_by_side(
        jobs,
        args=(str(scenario_path), opts.seed, str(ws.root), opts.backend),
        console=console,
        begin=sc.begin_s,
        end=sc.end_s,
        sense=opts.twin,
    )

    table = Table(title=f"{sc.name}: fixed-time vs {' vs '.join(jobs[1:])}" if len(jobs) > 1 else sc.name)
    table.add_column("metric")
    for j in jobs:
        table.add_column(j, justify="right")
    rows = []
    for key, label in SHOWN:
        values = [results[j]["metrics"].get(key) for j in jobs]
        rows.append((label, *values))
        table.add_row(label, *(_fmt(v) for v in values))
    console.print(table)
    # Forecasts start after a warm-up (the simulated network starts empty): 15 min, less on short windows.
    warmup_min = min(15.0, (sc.end_s - sc.begin_s) / 60 / 4)
    replay = (
        _twin(results["fixed"], workspace=ws, console=console, warmup_min=warmup_min) if opts.twin else None
    )

    report = Report(
        title="RoadTwin: Yizhuang morning peak",
        subtitle=f"scenario {sc.name}, seed {opts.seed if opts.seed is not None else sc.seed}, "
        f"backend {opts.backend}",
        footer=ATTRIBUTION,
    )
    summary = report.section(
        "Signal control: fixed-time against " + " and ".join(jobs[1:])
        if len(jobs) > 1
        else "Fixed-time signals",
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
    if replay is not None:
        _twin_section(
            report,
            replay,
            fixed=results["fixed"],
            warmup_min=warmup_min,
            out=ws.reports / "demo-forecast.png",
        )
    out = report.write(ws.reports / "demo.html")
    console.print(f"report: {out}")
    console.print(f"done in {time.perf_counter() - t0:.0f} s")
    return out


def _twin(fixed: dict[str, Any], *, workspace: Any, console: Any, warmup_min: float = 15.0) -> Any:
    """The twin on the observed day (the fixed-time run's feeds): store, state, forecasts; prints MAE."""
    from rich.table import Table

    from roadtwin.twin.replay import replay_day

    console.rule("[bold]The twin: the fixed-time run as the observed day")
    sensed = fixed["sense"]
    console.print(
        f"sensor feeds of {Path(fixed['run_dir']).name} ({sensed['day']}): "
        + ", ".join(f"{n:,} {k}" for k, n in sensed["rows"].items())
        + f" rows in {sensed['wall_time_s']:.0f} s"
    )
    with console.status("ingesting feeds, estimating state, forecasting ..."):
        replay = replay_day(
            fixed["run_dir"], workspace=workspace, warmup_min=warmup_min, progress=console.print
        )
    table = Table(title="forecast against the estimated state: MAE (flow veh/h, speed km/h)")
    for col in ("horizon", "forecaster", "flow MAE", "speed MAE", "scored"):
        table.add_column(col, justify="left" if col == "forecaster" else "right")
    for row in _mae_rows(replay):
        table.add_row(f"{row[0]} min", row[1], f"{row[2]:.1f}", f"{row[4]:.1f}", f"{row[6]:,}")
    console.print(table)
    return replay


def _mae_rows(replay: Any) -> list[tuple[Any, ...]]:
    """(horizon, method, flow MAE, flow MAPE, speed MAE, speed MAPE, n) per horizon and method."""
    s = replay.scores
    rows: list[tuple[Any, ...]] = []
    methods = [replay.forecaster, *sorted(set(s["method"]) - {replay.forecaster})]
    for h in sorted(s["horizon_min"].unique()):
        for m in methods:
            part = s[(s["horizon_min"] == h) & (s["method"] == m)].set_index("variable")
            if part.empty:
                continue
            label = m.replace("_", " ") + (" (in the store)" if m == replay.forecaster else "")
            rows.append((int(h), label, float(part.loc["flow", "mae"]), float(part.loc["flow", "mape"]),
                         float(part.loc["speed", "mae"]), float(part.loc["speed", "mape"]),
                         int(part.loc["flow", "n"])))  # fmt: skip
    if not rows:  # a window shorter than the warm-up and the shortest horizon
        rows.append(("-", "no forecast target within the run", float("nan"), float("nan"), float("nan"),
                     float("nan"), 0))  # fmt: skip
    return rows


def _twin_section(report: Any, replay: Any, *, fixed: dict[str, Any], warmup_min: float, out: Path) -> None:
    """The report's section on the twin: what it did, forecast against actual, MAE per horizon."""
    st5 = replay.state[300]
    measured = (~st5["sources"].isin(["neighbours", "zone"])).mean()
    sec = report.section(
        "The twin: forecast against actual",
        f"The fixed-time run is the observed day. Its sensor feeds (loops, cameras and radar at the roadside, "
        f"10 % connected-vehicle probes; {sum(fixed['sense']['rows'].values()):,} rows) were ingested into the "
        f"workspace's store ({replay.rows_ingested:,} rows with the sensor registry, "
        f"{replay.quarantined:,} quarantined); the state "
        f"of {st5['edge'].nunique()} edges was estimated every 5 minutes and every minute ({measured:.0%} of "
        f"5-minute edge-intervals from data, the rest from neighbours); and forecasts of every edge's flow "
        f"and speed 15, 30 and 60 minutes ahead were issued every 5 minutes after a {warmup_min:g}-minute warm-up with "
        f"the {replay.label}. The store's tables state and forecasts feed the dashboard's Forecast and "
        f"Network pages. Actual = the twin's estimated 5-minute state; MAE over every edge whose target "
        f"interval lies in the run (MAPE divides by at least 60 veh/h or 5 km/h).",
    )
    sec.tables.append(
        (["horizon (min)", "forecaster", "flow MAE (veh/h)", "flow MAPE (%)", "speed MAE (km/h)",
          "speed MAPE (%)", "edge-intervals"], _mae_rows(replay))
    )  # fmt: skip
    sec.images.append(_forecast_plot(replay, out=out))


def _forecast_plot(replay: Any, *, out: Path) -> Path:
    """Actual (estimated) against predicted flow and speed at 15/30/60 min: zone mean and busiest edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.dates import DateFormatter

    from roadtwin._io import atomic_path

    st = replay.state[300].copy()
    st["at"] = (pd.to_datetime(st["interval_start"], utc=True) + pd.Timedelta(seconds=300)).dt.tz_convert(
        replay.timezone
    )
    fc = replay.forecasts[replay.forecaster].copy()
    fc["at"] = pd.to_datetime(fc["target_at"], utc=True).dt.tz_convert(replay.timezone)
    busiest = str(st.groupby("edge")["flow_veh_h"].mean().idxmax())
    fig, axes = plt.subplots(2, 2, figsize=(13, 7), constrained_layout=True, sharex=True)
    colours = {15: "#2563eb", 30: "#f59e0b", 60: "#dc2626"}
    last = st["at"].max()
    for row, (title, pick) in enumerate(
        (("zone: mean over all edges", None), (f"busiest edge {busiest}", busiest))
    ):
        s = st if pick is None else st[st["edge"] == pick]
        f = fc if pick is None else fc[fc["edge"] == pick]
        for col, (var, unit) in enumerate((("flow_veh_h", "flow (veh/h)"), ("speed_kmh", "speed (km/h)"))):
            ax = axes[row, col]
            actual = s.groupby("at")[var].mean()
            ax.plot(actual.index, actual.to_numpy(), color="black", lw=2, label="actual (estimated state)")
            for h, colour in colours.items():
                pred = f[(f["horizon_min"] == h) & (f["at"] <= last)].groupby("at")[var].mean()
                ax.plot(
                    pred.index,
                    pred.to_numpy(),
                    color=colour,
                    lw=1.2,
                    ls="--",
                    label=f"predicted {h} min ahead",
                )
            ax.set(title=f"{title}: {unit.split(' ')[0]}", ylabel=unit)
            ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=replay.timezone))
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Forecast against actual ({replay.label.split(':')[0].split(' (')[0]})")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
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
