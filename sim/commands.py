"""``roadtwin sim``: run scenarios."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import Field, field_validator

from roadtwin.config import StrictModel, load_options
from roadtwin.sim.backend import DEFAULT_BACKEND, Backend

__all__ = ["RunOptions", "app"]

app = typer.Typer(no_args_is_help=True, help="Run scenarios in SUMO.")


class RunOptions(StrictModel):
    """Options of ``roadtwin sim run`` (also settable in a ``--config`` YAML file)."""

    scenario: Path
    backend: Backend = DEFAULT_BACKEND
    workspace: Path = Path("roadtwin-data")
    seed: int | None = None
    time_to_teleport: float = -1
    progress: bool = True
    record: list[Literal["fcd", "signals"]] = Field(default_factory=list)

    @field_validator("record", mode="before")
    @classmethod
    def _split_record(cls, value: object) -> object:
        # ``--record fcd,signals`` on the command line; a list or the same string in YAML.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@app.command("run")
def run(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML file (see sim/scenarios/ for the built-in ones).")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="SUMO backend: libsumo (default) or traci.")] = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    time_to_teleport: Annotated[
        float | None, typer.Option(help="SUMO --time-to-teleport; -1 (default) disables teleporting.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(
            help="Record for a dataset, comma-separated: fcd (trajectories, fcd.parquet), "
            "signals (signal states, signals.xml). For roadtwin datasets export."
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Simulate a scenario under its network's own signal programs; write a run folder.

    The run folder holds the exact config, SUMO's tripinfo, metrics and plots. To run other signal
    controllers, use ``roadtwin agents eval``. ``--record fcd,signals`` also records what
    ``roadtwin datasets export`` needs.
    """
    from rich.console import Console

    from roadtwin.sim.run import run_scenario
    from roadtwin.sim.scenario import load_scenario
    from roadtwin.workspace import Workspace

    opts = load_options(
        RunOptions, config=config, scenario=scenario, backend=backend,
        workspace=workspace, seed=seed, time_to_teleport=time_to_teleport, progress=progress,
        record=record,
    )  # fmt: skip
    sc = load_scenario(opts.scenario)
    if opts.seed is not None:
        sc = sc.model_copy(update={"seed": opts.seed})
    result = run_scenario(
        sc,
        workspace=Workspace.at(opts.workspace),
        backend=opts.backend,
        time_to_teleport=opts.time_to_teleport,
        progress=opts.progress,
        record=tuple(opts.record),
    )
    print_metrics(Console(), result.metrics.as_dict(), title=f"{sc.name} ({opts.backend})")
    typer.echo(f"run folder: {result.run_dir}")


def print_metrics(console: object, metrics: Mapping[str, object], *, title: str) -> None:
    """Print a metrics dict as a two-column table."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)  # type: ignore[attr-defined]
