"""``roadtwin twin``: sensor feeds from a run, and validated ingestion into the store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field

from roadtwin.config import StrictModel, load_options

__all__ = ["CalibrateOptions", "EstimateOptions", "IngestOptions", "SenseOptions", "app"]

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


# --- state estimation and calibration (twin/estimation.py, twin/calibration.py) -------------------------


class EstimateOptions(StrictModel):
    """Options of ``roadtwin twin estimate`` (also settable in a ``--config`` YAML file)."""

    run: Path
    resolution: list[int] = Field(default_factory=lambda: [60, 300])
    sources: list[str] = Field(default_factory=lambda: ["loop", "probe"])
    workspace: Path | None = None


class CalibrateOptions(StrictModel):
    """Options of ``roadtwin twin calibrate`` (also settable in a ``--config`` YAML file)."""

    observed: Path
    holdout: Path | None = None
    iterations: int = Field(3, ge=1, le=20)
    count_interval_s: int = Field(900, ge=60, le=3600)
    candidate_factor: float = Field(2.0, gt=0)
    candidate_seed: int | None = None
    out: Path | None = None


@app.command("estimate")
def estimate(
    run: Annotated[Path | None, typer.Argument(help="A sensed run folder (roadtwin twin sense).")] = None,
    resolution: Annotated[
        list[int] | None, typer.Option(help="Interval in s, 60 or 300; repeat for both (default both).")
    ] = None,
    sources: Annotated[
        list[str] | None, typer.Option(help="Feeds to fuse: loop, probe, radar (default loop and probe).")
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Also write into this workspace's store (table state).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Estimate per-edge speed, flow and density from a run's feeds: RUN/state/edges_{60,300}.parquet.

    Loops and probes are fused with inverse-variance weights; edges without data take their
    neighbours' speed ratio with a low confidence. With --workspace the rows also go into the store's
    table ``state`` (columns in roadtwin.twin.estimation.STATE_COLUMNS).
    """
    import yaml

    from roadtwin.errors import InputError
    from roadtwin.twin.estimation import edge_geometry, estimate_state, write_state
    from roadtwin.twin.store import Store
    from roadtwin.workspace import Workspace

    opts = load_options(EstimateOptions, config=config, run=run, resolution=resolution or None,
                        sources=sources or None, workspace=workspace)  # fmt: skip
    cfg_path = opts.run / "config.yaml"
    if not cfg_path.is_file():
        raise InputError(path=opts.run, field="config.yaml", expected="a run folder (roadtwin sim run)")
    net_file = Path(
        str(
            (yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {})
            .get("run", {})
            .get("network_file", "")
        )
    )
    if not net_file.is_file():
        raise InputError(
            path=cfg_path, field="run.network_file", expected="an existing network", got=str(net_file)
        )
    geo = edge_geometry(net_file)
    store = Store.of(Workspace.at(opts.workspace)) if opts.workspace is not None else None
    try:
        for res in opts.resolution:
            state = estimate_state(opts.run / "feeds", net_file=net_file, resolution_s=res,
                                   sources=tuple(opts.sources), geometry=geo)  # fmt: skip
            path = write_state(state, run_dir=opts.run, store=store)
            measured = (~state["sources"].isin(["neighbours", "zone"])).mean()
            typer.echo(f"{path}: {len(state):,} rows, {state['edge'].nunique()} edges, "
                       f"{measured:.0%} from data, mean confidence {state['confidence'].mean():.2f}")  # fmt: skip
    finally:
        if store is not None:
            store.close()


@app.command("calibrate")
def calibrate(
    observed: Annotated[
        Path | None,
        typer.Option(help="The sensed run whose loop counts are fitted (its scenario and window)."),
    ] = None,
    holdout: Annotated[
        Path | None, typer.Option(help="A sensed run of another day to score the calibrated demand on.")
    ] = None,
    iterations: Annotated[
        int | None, typer.Option(help="routeSampler -> simulate -> correct rounds (3).")
    ] = None,
    count_interval_s: Annotated[int | None, typer.Option(help="Counting interval in s (900).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Calibration folder (default WORKSPACE/calibrations/NAME__TIME).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Fit the observed run's demand to its loop counts with routeSampler.py and report GEH per location.

    Writes routes.rou.xml, geh.csv (per counting location), geh.png (model vs observed with the
    GEH < 5 band) and summary.json. With --holdout the calibrated demand is also scored against
    that run's counts (a held-out day).
    """
    import yaml

    from roadtwin.errors import InputError
    from roadtwin.sim.scenario import Scenario
    from roadtwin.twin.calibration import calibrate as do_calibrate
    from roadtwin.workspace import Workspace

    opts = load_options(CalibrateOptions, config=config, observed=observed, holdout=holdout,
                        iterations=iterations, count_interval_s=count_interval_s, out=out)  # fmt: skip
    cfg_path = opts.observed / "config.yaml"
    if not cfg_path.is_file():
        raise InputError(path=opts.observed, field="config.yaml", expected="a run folder (roadtwin sim run)")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    scenario = Scenario.model_validate(cfg.get("scenario") or {})
    net_file = (cfg.get("run") or {}).get("network_file")
    result = do_calibrate(
        observed_counts=opts.observed / "feeds", scenario=scenario,
        workspace=Workspace.at(opts.observed.resolve().parent.parent), out_dir=opts.out,
        holdout_counts=opts.holdout / "feeds" if opts.holdout is not None else None,
        iterations=opts.iterations, count_interval_s=opts.count_interval_s,
        candidate_factor=opts.candidate_factor, candidate_seed=opts.candidate_seed,
        net_file=net_file if net_file and Path(net_file).is_file() else None,
        progress=lambda m: typer.echo(m, err=True),
    )  # fmt: skip
    typer.echo(f"GEH < 5 on {result.share_under_5:.1%} of {len(result.table)} locations (calibrated day)")
    if result.holdout_share_under_5 is not None:
        typer.echo(f"GEH < 5 on {result.holdout_share_under_5:.1%} of them on the held-out day")
    typer.echo(f"calibration: {result.folder}")


# --- forecasting (twin/dataset.py, twin/forecast.py, twin/forecast_commands.py) ---------------------------
from roadtwin.twin.forecast_commands import app as _forecast_app  # noqa: E402

app.add_typer(_forecast_app, name="forecast", help="Forecast flow, speed and congestion 15/30/60 min ahead.")
