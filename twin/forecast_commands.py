"""``roadtwin twin forecast``: simulate training days, train the forecaster, evaluate it against baselines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import Field

from roadtwin.config import StrictModel, load_options

__all__ = ["EvalOptions", "GenerateOptions", "IssueOptions", "TrainOptions", "app"]

app = typer.Typer(no_args_is_help=True, help="Forecast flow, speed and congestion 15/30/60 min ahead.")


class GenerateOptions(StrictModel):
    """Options of ``roadtwin twin forecast generate`` (also settable in a ``--config`` YAML file)."""

    days: int = Field(30, ge=1)
    workspace: Path = Path("roadtwin-data")
    scenario: Path | None = None
    seed: int = Field(0, ge=0)
    begin: str = "06:30"
    end: str = "09:30"
    period_s: float = Field(60.0, gt=0)
    mesoscopic: bool = True
    workers: int = Field(1, ge=1)
    folder: Path | None = None
    progress: bool = True


class TrainOptions(StrictModel):
    """Options of ``roadtwin twin forecast train`` (the run's ``config.yaml`` holds the model's part)."""

    workspace: Path = Path("roadtwin-data")
    days_dir: Path | None = None
    run: str | None = None
    resume: bool = False
    progress: bool = True
    step_min: int = Field(5, ge=1)
    history: int = Field(12, ge=1)
    horizons_min: list[int] = Field(default_factory=lambda: [15, 30, 60], min_length=1)
    warmup_min: int = Field(15, ge=0)
    stride_min: int = Field(1, ge=1)
    val_days: int = Field(2, ge=0)
    test_days: int = Field(3, ge=1)
    temporal: Literal["mlp", "gru"] = "mlp"
    hidden: int = Field(32, ge=1)
    graph_layers: int = Field(2, ge=0)
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(10, ge=1)
    seed: int = Field(0, ge=0)
    threads: int = Field(2, ge=1)


class EvalOptions(StrictModel):
    """Options of ``roadtwin twin forecast eval``."""

    run: Path
    days_dir: Path | None = None
    latency_runs: int = Field(100, ge=1)
    threads: int = Field(1, ge=1)
    plot: bool = True


class IssueOptions(StrictModel):
    """Options of ``roadtwin twin forecast issue``."""

    workspace: Path = Path("roadtwin-data")
    run: Path | None = None
    persistence: bool = False
    day: str | None = None
    every_min: int = Field(5, ge=1)
    warmup_min: float = Field(15.0, ge=0)
    horizons_min: list[int] = Field(default_factory=lambda: [15, 30, 60], min_length=1)
    weather: str = "clear"
    timezone: str = "Asia/Shanghai"


def _default_days_dir(workspace: Path) -> Path:
    from roadtwin.sim.scenario import builtin_scenario, load_scenario
    from roadtwin.twin.dataset import days_folder
    from roadtwin.workspace import Workspace

    base = load_scenario(builtin_scenario())
    return days_folder(
        workspace=Workspace.at(workspace), base_scenario=base, seed=0, window=("06:30", "09:30")
    )


@app.command("generate")
def generate(
    days: Annotated[int | None, typer.Option(help="Days the cache holds afterwards (30).")] = None,
    workspace: Annotated[Path | None, typer.Option(help="Workspace folder (./roadtwin-data).")] = None,
    scenario: Annotated[
        Path | None, typer.Option(help="Base scenario YAML (the built-in morning peak).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the days' variation (0).")] = None,
    begin: Annotated[str | None, typer.Option(help="Start of each simulated day, HH:MM (06:30).")] = None,
    end: Annotated[str | None, typer.Option(help="End of each simulated day, HH:MM (09:30).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel simulations (1).")] = None,
    mesoscopic: Annotated[
        bool | None, typer.Option("--meso/--micro", help="SUMO's mesoscopic model (default) or microscopic.")
    ] = None,
    folder: Annotated[Path | None, typer.Option(help="Cache folder (default under the workspace).")] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Simulate varied days of the zone into a cache; days already there are skipped (resumable)."""
    from roadtwin.sim.scenario import builtin_scenario, load_scenario
    from roadtwin.twin.dataset import generate_days
    from roadtwin.workspace import Workspace

    opts = load_options(
        GenerateOptions, config=config, days=days, workspace=workspace, scenario=scenario, seed=seed, begin=begin,
        end=end, workers=workers, mesoscopic=mesoscopic, folder=folder, progress=progress,
    )  # fmt: skip
    base = load_scenario(opts.scenario or builtin_scenario())
    t0 = time.perf_counter()
    out = generate_days(
        n_days=opts.days, workspace=Workspace.at(opts.workspace), base_scenario=base, seed=opts.seed,
        window=(opts.begin, opts.end), period_s=opts.period_s, mesoscopic=opts.mesoscopic, workers=opts.workers,
        folder=opts.folder, progress=opts.progress,
    )  # fmt: skip
    typer.echo(f"{opts.days} days in {out} ({time.perf_counter() - t0:.0f} s)")


@app.command("train")
def train(
    workspace: Annotated[Path | None, typer.Option(help="Workspace folder (./roadtwin-data).")] = None,
    days_dir: Annotated[
        Path | None, typer.Option(help="Days folder (default: the generate default).")
    ] = None,
    run: Annotated[str | None, typer.Option(help="Run name under WORKSPACE/forecast/ (a new one).")] = None,
    resume: Annotated[
        bool | None, typer.Option("--resume", help="Continue the run from its last checkpoint.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs (60).")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads (2).")] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file with any option, model ones included.")
    ] = None,
) -> None:
    """Train the graph-temporal forecaster, a checkpoint per epoch; ``--resume`` continues after a kill."""
    from roadtwin.twin.forecast import ForecastConfig
    from roadtwin.twin.forecast import train as do_train

    opts = load_options(
        TrainOptions, config=config, workspace=workspace, days_dir=days_dir, run=run, resume=resume, epochs=epochs,
        threads=threads, progress=progress,
    )  # fmt: skip
    if opts.resume and opts.run is None:
        from roadtwin.errors import ConfigError

        raise ConfigError(path=config, field="run", expected="the name of the run to resume with --resume")
    fields = set(ForecastConfig.__dataclass_fields__)
    cfg = ForecastConfig(
        **{k: v for k, v in opts.model_dump().items() if k in fields}
        | {"horizons_min": tuple(opts.horizons_min)}
    )
    name = opts.run or f"yizhuang__stgru__{opts.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    out = opts.workspace / "forecast" / name
    result = do_train(
        days_dir=opts.days_dir or _default_days_dir(opts.workspace), out_dir=out, config=cfg,
        resume=opts.resume, progress=opts.progress,
    )  # fmt: skip
    typer.echo(
        f"{result['epochs']} epochs in {result['seconds']:.0f} s, best val {result['best_val']:.4f} "
        f"at epoch {result['best_epoch']}{' (early stop)' if result['stopped_early'] else ''}\nrun: {out}"
    )


@app.command("eval")
def evaluate(
    run: Annotated[Path | None, typer.Argument(help="A run folder (roadtwin twin forecast train).")] = None,
    days_dir: Annotated[
        Path | None, typer.Option(help="Days folder (default: the one it was trained on).")
    ] = None,
    latency_runs: Annotated[int | None, typer.Option(help="Forward passes timed (100).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Evaluate a run on its held-out days: MAE, RMSE and MAPE per horizon against the baselines."""
    from rich.console import Console
    from rich.table import Table

    from roadtwin.twin.forecast import evaluate as do_eval

    opts = load_options(EvalOptions, config=config, run=run, days_dir=days_dir, latency_runs=latency_runs)
    result = do_eval(run_dir=opts.run, days_dir=opts.days_dir, latency_runs=opts.latency_runs, threads=opts.threads,
                      plot=opts.plot)  # fmt: skip
    table = Table(title=f"forecast on held-out days {result['test_days']} ({result['edges']} edges)")
    for col in ("model", "variable", "horizon", "MAE", "RMSE", "MAPE %"):
        table.add_column(col, justify="left" if col in ("model", "variable") else "right")
    for r in result["rows"]:
        table.add_row(r["model"], r["variable"], f"{r['horizon_min']} min", f"{r['mae']:.2f}", f"{r['rmse']:.2f}",
                      f"{r['mape']:.1f}")  # fmt: skip
    Console().print(table)
    typer.echo(
        f"full-zone inference: {result['latency_ms']:.2f} ms (median, batch 1, {result['threads']} threads)"
    )
    typer.echo(f"metrics: {opts.run / 'metrics.csv'}")


@app.command("issue")
def issue(
    workspace: Annotated[Path | None, typer.Option(help="Workspace folder (./roadtwin-data).")] = None,
    run: Annotated[
        Path | None, typer.Option(help="A trained forecast run (default: the newest in the workspace).")
    ] = None,
    persistence: Annotated[
        bool | None, typer.Option("--persistence", help="Use the persistence baseline, not a trained run.")
    ] = None,
    day: Annotated[
        str | None, typer.Option(help="Local day of the state to forecast, YYYY-MM-DD (default: the latest).")
    ] = None,
    every_min: Annotated[int | None, typer.Option(help="Minutes between two issue times (5).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Forecast from the store's 5-minute state into its table forecasts; print MAE per horizon.

    The state comes from ``roadtwin twin estimate RUN --workspace``; the forecaster is the newest
    trained run of the workspace (or --run), else the persistence baseline. ``roadtwin demo`` does this
    for the morning peak.
    """
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from roadtwin.errors import InputError
    from roadtwin.twin.predict import (
        ModelForecaster,
        Persistence,
        best_forecaster,
        compare_forecasts,
        issue_forecasts,
        write_forecasts,
    )
    from roadtwin.twin.store import Store
    from roadtwin.workspace import Workspace

    opts = load_options(IssueOptions, config=config, workspace=workspace, run=run, persistence=persistence,
                        day=day, every_min=every_min)  # fmt: skip
    ws = Workspace.at(opts.workspace)
    if not ws.store_path.is_file():
        raise InputError(path=ws.store_path, field=None, expected="a store with estimated state "
                         "(roadtwin twin estimate RUN --workspace)")  # fmt: skip
    with Store.of(ws) as store:
        has = store.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'state'"
        ).fetchall()[0]
        state = (
            store.con.sql("SELECT * FROM state WHERE resolution_s = 300").to_arrow_table().to_pandas()
            if has and has[0]
            else pd.DataFrame()
        )
        if state.empty:
            raise InputError(path=ws.store_path, field="state", expected="5-minute estimated state "
                             "(roadtwin twin estimate RUN --workspace)")  # fmt: skip
        local = pd.to_datetime(state["interval_start"], utc=True).dt.tz_convert(opts.timezone)
        chosen = opts.day or str(local.dt.date.max())
        state = state[local.dt.date.astype(str) == chosen]
        if state.empty:
            raise InputError(
                path=ws.store_path, field="day", expected="a day with estimated state", got=chosen
            )
        if opts.persistence:
            forecaster, label = Persistence(), "persistence baseline"
        elif opts.run is not None:
            forecaster = ModelForecaster(opts.run, weather=opts.weather, timezone=opts.timezone)
            label = f"trained forecaster {opts.run.name}"
        else:
            forecaster, label = best_forecaster(ws, weather=opts.weather, timezone=opts.timezone)
        begin = pd.to_datetime(state["interval_start"], utc=True).min()
        forecasts = issue_forecasts(
            state, forecaster=forecaster, horizons_min=opts.horizons_min, every_min=opts.every_min,
            first_issue=begin + pd.Timedelta(minutes=opts.warmup_min),
        )  # fmt: skip
        if forecaster.name != "persistence":  # the plain baseline is always scored beside a model
            forecasts.update(issue_forecasts(
                state, forecaster=Persistence(), horizons_min=opts.horizons_min, every_min=opts.every_min,
                first_issue=begin + pd.Timedelta(minutes=opts.warmup_min),
            ))  # fmt: skip
        n = write_forecasts(forecasts[forecaster.name], store=store)
    scores = compare_forecasts(forecasts, state)
    table = Table(title=f"forecasts of {chosen} against the estimated state ({label})")
    for col in ("method", "variable", "horizon", "MAE", "RMSE", "MAPE %", "scored"):
        table.add_column(col, justify="left" if col in ("method", "variable") else "right")
    for r in scores.itertuples():
        table.add_row(r.method, r.variable, f"{r.horizon_min} min", f"{r.mae:.2f}", f"{r.rmse:.2f}",
                      f"{r.mape:.1f}", f"{r.n:,}")  # fmt: skip
    Console().print(table)
    typer.echo(f"{n:,} forecast rows written to {ws.store_path} (table forecasts)")
