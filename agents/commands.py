"""``roadtwin agents``: evaluate signal controllers (and, from the training module, train them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import Field

from roadtwin.config import StrictModel, load_options
from roadtwin.sim.backend import DEFAULT_BACKEND, Backend

__all__ = ["EvalOptions", "app", "eval_command"]

app = typer.Typer(no_args_is_help=True, help="Signal and routing controllers: evaluate and train them.")


class EvalOptions(StrictModel):
    """Options of ``roadtwin agents eval`` (also settable in a ``--config`` YAML file)."""

    scenario: str
    controllers: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["fixed"])
    seeds: int | list[int] = 3
    workspace: Path = Path("roadtwin-data")
    backend: Backend = DEFAULT_BACKEND
    duration_s: Annotated[float, Field(gt=0)] | None = None
    controller_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    routing: list[str] = Field(default_factory=lambda: ["none"])
    penetration: list[Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=lambda: [0.0])
    routing_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    progress: bool = True


def eval_command(
    scenario: Annotated[
        str | None,
        typer.Option(
            help="RESCO scenario (cologne1 ... ingolstadt21), 'zone', a built-in scenario or a YAML file."
        ),
    ] = None,
    controller: Annotated[
        list[str] | None,
        typer.Option(
            "--controller",
            "-c",
            help="Controller: fixed, webster, actuated, max-pressure, max-pressure-naive, rl:PATH. Repeatable.",
        ),
    ] = None,
    routing: Annotated[
        list[str] | None,
        typer.Option(
            "--routing",
            "-r",
            help="Routing controller beside each signal controller: none (default), rerouting (SUMO's "
            "device), guidance (forecast-aware), rl-routing:PATH. Repeatable.",
        ),
    ] = None,
    penetration: Annotated[
        list[float] | None,
        typer.Option(
            "--penetration",
            "-p",
            help="Connected-vehicle share the routing controllers run at (0.3 for 30 %). Repeatable.",
        ),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="Number of seeds N: runs seeds 0 .. N-1 (default 3).")
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="SUMO backend: libsumo (default) or traci.")] = None,
    duration: Annotated[
        float | None, typer.Option(help="Simulate only the first DURATION seconds of the window.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar over runs.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML file with any of these options (controllers: [..], controller_options: {..})."
        ),
    ] = None,
) -> None:
    """Run controllers over seeds on a scenario; write results.csv, summary.csv, plots and a report.

    With --routing, every signal controller also runs with each routing controller at each
    --penetration (connected-vehicle share); the controller column reads SIGNALS+ROUTING@P%.

    Each (controller, seed) run gets its own run folder under WORKSPACE/runs; the evaluation folder
    WORKSPACE/evaluations/SCENARIO__TIMESTAMP holds the tidy table and the plots.
    """
    from rich.console import Console

    from roadtwin.agents.evaluate import evaluate
    from roadtwin.workspace import Workspace

    opts = load_options(
        EvalOptions, config=config, scenario=scenario, controllers=controller or None, seeds=seeds,
        routing=routing or None, penetration=penetration or None,
        workspace=workspace, backend=backend, duration_s=duration, progress=progress,
    )  # fmt: skip
    result = evaluate(
        scenario=opts.scenario,
        controllers=opts.controllers,
        seeds=opts.seeds,
        workspace=Workspace.at(opts.workspace),
        backend=opts.backend,
        duration_s=opts.duration_s,
        controller_options=opts.controller_options,
        progress=opts.progress,
        routing=opts.routing,
        penetrations=opts.penetration,
        routing_options=opts.routing_options,
    )
    print_summary(
        Console(), result.summary, title=f"{result.results['scenario'].iloc[0]} ({len(result.results)} runs)"
    )
    typer.echo(f"evaluation folder: {result.folder}")


def print_summary(console: Any, summary: Any, *, title: str) -> None:
    """Print an evaluation summary (mean ± std per controller) as a table."""
    from rich.measure import Measurement
    from rich.table import Table

    from roadtwin.agents.base import short_spec
    from roadtwin.agents.evaluate import METRIC_COLUMNS

    table = Table(title=title, caption="mean ± std over seeds")
    table.add_column("controller", overflow="fold", max_width=32)  # rl:PATH specs are long
    table.add_column("runs", justify="right")
    for col in METRIC_COLUMNS:
        table.add_column(_SHORT.get(col, col), justify="right")
    for _, row in summary.iterrows():
        table.add_row(
            short_spec(str(row["controller"])),
            str(int(row["runs"])),
            *(f"{row[f'{c}_mean']:.2f} ± {row[f'{c}_std']:.2f}" for c in METRIC_COLUMNS),
        )
    # Never squeeze the figures to fit a narrow terminal (or a pipe's 80 columns): a wide table wraps
    # in the terminal but loses nothing.
    wide = Measurement.get(console, console.options.update_width(1000), table).maximum
    width = console.width
    console.width = max(width, wide)
    try:
        console.print(table)
    finally:
        console.width = width


_SHORT = {
    "resco_delay_s": "RESCO delay s",
    "exact_delay_s": "exact delay s",
    "trip_time_s": "trip s",
    "wait_s": "wait s",
    "queue": "queue",
    "never_inserted": "never inserted",
    "blocked": "blocked",
    "still_running": "still running",
    "throughput_veh_h": "veh/h",
}

app.command("eval")(eval_command)

# --- training -------------------------------------------------------------------------------------------
from roadtwin.agents.train import train_command  # noqa: E402 - light: SB3 and torch load when it runs

app.command("train")(train_command)
