"""``roadtwin twin``: sensor feeds from a run, and validated ingestion into the store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field

from roadtwin.config import StrictModel, load_options

__all__ = ["IngestOptions", "SenseOptions", "app"]

app = typer.Typer(no_args_is_help=True, help="Sensor feeds, the store and ingestion.")


class SenseOptions(StrictModel):
    """Options of ``roadtwin twin sense`` (also settable in a ``--config`` YAML file)."""

    run: Path
    penetration: float = Field(0.1, ge=0, le=1)
    gps_noise_m: float = Field(5.0, ge=0)
    interval_s: int = Field(5, ge=1)
    dropout: float = Field(0.02, ge=0, le=1)
    latency_s: float = Field(2.0, ge=0)
    latency_jitter_s: float = Field(1.0, ge=0)
    radar_noise_kmh: float = Field(2.0, ge=0)
    period_s: int = Field(60, ge=1, le=3600)
    seed: int = Field(0, ge=0)
    day: dt.date | None = None
    timezone: str = "Asia/Shanghai"
    progress: bool = True


class IngestOptions(StrictModel):
    """Options of ``roadtwin twin ingest`` (also settable in a ``--config`` YAML file)."""

    files: list[Path] = Field(min_length=1)
    workspace: Path = Path("roadtwin-data")
    kind: str | None = None
    max_skew_s: float = Field(300.0, ge=0)


@app.command("sense")
def sense(
    run: Annotated[Path | None, typer.Argument(help="A run folder (roadtwin sim run).")] = None,
    penetration: Annotated[
        float | None, typer.Option(help="Share of vehicles reporting as probes (0.1).")
    ] = None,
    gps_noise_m: Annotated[float | None, typer.Option(help="GPS error standard deviation in m (5).")] = None,
    interval_s: Annotated[
        int | None, typer.Option(help="Seconds between two reports of a probe (5).")
    ] = None,
    dropout: Annotated[float | None, typer.Option(help="Probability a probe report is lost (0.02).")] = None,
    latency_s: Annotated[float | None, typer.Option(help="Delay of a probe report in s (2).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of probe choice and noise (0).")] = None,
    day: Annotated[
        str | None,
        typer.Option(help="Day the run's times fall on, YYYY-MM-DD (default: the day before the run)."),
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Write a run's sensor feeds (RUN/feeds/) and ground truth (RUN/truth/), Parquet and CSV.

    The run's exact inputs are simulated again (same seed, same traffic) with loops, cameras and radar
    placed on the zone and connected-vehicle probes; formats are documented in twin/FEEDS.md.
    """
    from rich.console import Console
    from rich.table import Table

    from roadtwin.twin.sensors import ProbeModel, SensorModel
    from roadtwin.twin.sensors import sense as do_sense

    opts = load_options(
        SenseOptions, config=config, run=run, penetration=penetration, gps_noise_m=gps_noise_m,
        interval_s=interval_s, dropout=dropout, latency_s=latency_s, seed=seed, day=day, progress=progress,
    )  # fmt: skip
    model = SensorModel(
        probe=ProbeModel(
            penetration=opts.penetration, gps_noise_m=opts.gps_noise_m, interval_s=opts.interval_s,
            dropout=opts.dropout, latency_s=opts.latency_s, latency_jitter_s=opts.latency_jitter_s,
        ),
        period_s=opts.period_s, radar_noise_kmh=opts.radar_noise_kmh, seed=opts.seed, day=opts.day,
        timezone=opts.timezone,
    )  # fmt: skip
    result = do_sense(opts.run, model=model, progress=opts.progress)
    table = Table(title=f"feeds of {opts.run.name} ({result.day}, {result.wall_time_s:.1f} s)")
    table.add_column("feed")
    table.add_column("rows", justify="right")
    for kind, n in result.rows.items():
        table.add_row(kind, f"{n:,}")
    Console().print(table)
    typer.echo(f"feeds: {result.feeds_dir}\ntruth: {result.truth_dir}")


@app.command("ingest")
def ingest(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Feed files (Parquet or CSV) or feed folders.")
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="Read every file as this kind (default: by its columns).")
    ] = None,
    max_skew_s: Annotated[
        float | None, typer.Option(help="Seconds a timestamp may lie ahead of the clock (300).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Validate feed files and add their rows to the workspace's store.

    Bad rows go to the quarantine table with their reason; a file ingested before adds nothing. A
    file that is not a feed at all is refused with one line naming it; the other files still go in,
    and the command exits with code 2.
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from roadtwin.twin.store import Store
    from roadtwin.twin.store import ingest as do_ingest
    from roadtwin.workspace import Workspace

    opts = load_options(
        IngestOptions,
        config=config,
        files=files or None,
        workspace=workspace,
        kind=kind,
        max_skew_s=max_skew_s,
    )
    console = Console(stderr=True)
    with Store.of(Workspace.at(opts.workspace)) as store, Progress(console=console, transient=True) as bar:
        task = bar.add_task("ingesting", total=len(opts.files))
        report = do_ingest(
            opts.files, store=store, kind=opts.kind, max_skew_s=opts.max_skew_s,
            on_file=lambda r: bar.advance(task),
        )  # fmt: skip
    table = Table(title=f"ingested into {Workspace.at(opts.workspace).store_path}")
    for col in ("file", "kind", "rows", "inserted", "duplicates", "quarantined", "s"):
        table.add_column(col, justify="left" if col in ("file", "kind") else "right", no_wrap=col == "file")
    for f in report.files:
        if f.error is not None:
            table.add_row(f.path.name, "refused", "", "", "", "", "")
        elif f.skipped:
            table.add_row(f.path.name, "already ingested", "", "0", "", "", f"{f.seconds:.2f}")
        else:
            table.add_row(f.path.name, f.kind or "", f"{f.rows:,}", f"{f.inserted:,}", f"{f.duplicates:,}",
                          f"{f.quarantined:,}", f"{f.seconds:.2f}")  # fmt: skip
    Console().print(table)
    for f in report.failed:
        typer.echo(f"roadtwin: error: {f.error}", err=True)
    if report.failed:
        raise typer.Exit(2)
