"""An observed day through the twin: sensed feeds into the store, estimated state, forecasts, scores.

This is the twin's loop on one sensed run (``roadtwin twin sense``): its feeds are validated into the
workspace's store, the state of every edge is estimated at each resolution and written to the store
table ``state``, forecasts are issued from the 5-minute state every few minutes with the best forecaster
the workspace has (:func:`~roadtwin.twin.predict.best_forecaster`) and written to the table
``forecasts``, and every forecast whose target was estimated is scored against it. ``roadtwin demo``
runs it on the fixed-time morning peak.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from roadtwin.errors import InputError

__all__ = ["ReplayResult", "replay_day"]


@dataclass
class ReplayResult:
    """What :func:`replay_day` did.

    Attributes
    ----------
    state
        Estimated state per resolution in s (frames of :func:`~roadtwin.twin.estimation.estimate_state`).
    forecasts
        ``{method: frame}`` of :data:`~roadtwin.twin.predict.FORECAST_COLUMNS`; the first is the forecaster's.
    scores
        :func:`~roadtwin.twin.predict.compare_forecasts` of every method (on the forecasts all issued).
    forecaster
        The method written to the store (``persistence`` or ``model``) and ``label``, a sentence on why.
    rows_ingested, quarantined
        Feed rows that went into the store, and rows quarantined.
    timezone
        The zone's time zone (the feeds' local time).
    seconds
        Wall time of each step.
    """

    state: dict[int, pd.DataFrame]
    forecasts: dict[str, pd.DataFrame]
    scores: pd.DataFrame
    forecaster: str
    label: str
    rows_ingested: int = 0
    quarantined: int = 0
    timezone: str = "Asia/Shanghai"
    seconds: dict[str, float] = field(default_factory=dict)


def replay_day(
    run_dir: str | os.PathLike[str],
    *,
    workspace: Any,
    resolutions_s: Sequence[int] = (300, 60),
    horizons_min: Sequence[int] = (15, 30, 60),
    every_min: int = 5,
    warmup_min: float = 15.0,
    forecaster: Any = None,
    progress: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Ingest a sensed run's feeds, estimate its state from the store, issue and score forecasts.

    The state is estimated from the store's observations of the run's window (on the feeds' day), so
    it is what the twin knows, whatever else the store holds.

    Parameters
    ----------
    run_dir
        A sensed run folder (``RUN/feeds/`` from ``roadtwin twin sense``).
    workspace
        The :class:`~roadtwin.workspace.Workspace` whose store receives feeds, state and forecasts.
    resolutions_s
        State resolutions (60 and/or 300 s); forecasts come from the 300-s state.
    horizons_min, every_min
        Forecast horizons, and minutes between two issue times.
    warmup_min
        No forecast is issued in the first minutes of the run (the simulated network starts empty).
    forecaster
        A :class:`~roadtwin.twin.predict.Forecaster`; default: the best one in ``workspace``.
    progress
        Called with one line per finished step.

    Raises
    ------
    InputError
        ``run_dir`` has no feeds, or any feed file is refused.
    """
    import yaml

    from roadtwin.sim.scenario import parse_time
    from roadtwin.twin.estimation import edge_geometry, estimate_state, write_state
    from roadtwin.twin.predict import best_forecaster, compare_forecasts, issue_forecasts, write_forecasts
    from roadtwin.twin.store import Store, ingest

    run = Path(run_dir)
    feeds = run / "feeds"
    if not (feeds / "manifest.json").is_file():
        raise InputError(path=run, field="feeds", expected="a sensed run (roadtwin twin sense RUN)")
    if 300 not in resolutions_s:
        raise InputError(path=None, field="resolutions_s", expected="300 among them", got=list(resolutions_s))
    say = progress or (lambda _m: None)
    manifest = json.loads((feeds / "manifest.json").read_text(encoding="utf-8"))
    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    net_file = Path(str((cfg.get("run") or {}).get("network_file", "")))
    timezone = str(manifest.get("timezone", "Asia/Shanghai"))
    weather = str((manifest.get("weather") or {}).get("condition", "clear"))
    scenario = cfg.get("scenario") or {}
    midnight = pd.Timestamp(str(manifest["day"])).tz_localize(timezone)
    window = tuple(
        (midnight + pd.Timedelta(seconds=parse_time(str(scenario[k])))).tz_convert("UTC")
        for k in ("begin", "end")
    )
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with Store.of(workspace) as store:
        report = ingest([feeds], store=store, keep_going=False)
        seconds["ingest"] = time.perf_counter() - t0
        say(f"ingested {report.inserted:,} feed rows into {workspace.store_path} "
            f"({report.quarantined:,} quarantined, {seconds['ingest']:.1f} s)")  # fmt: skip
        t0 = time.perf_counter()
        geo = edge_geometry(net_file)
        states = {}
        for res in resolutions_s:
            states[res] = estimate_state(
                store, net_file=net_file, resolution_s=res, geometry=geo, window=window
            )
            write_state(states[res], run_dir=run, store=store)
        seconds["estimate"] = time.perf_counter() - t0
        say(f"estimated the state of {geo.edges.shape[0]} edges at "
            f"{' and '.join(f'{r // 60} min' for r in resolutions_s)} ({seconds['estimate']:.1f} s)")  # fmt: skip
        t0 = time.perf_counter()
        if forecaster is None:
            forecaster, label = best_forecaster(workspace, weather=weather, timezone=timezone)
        else:
            label = str(getattr(forecaster, "name", "forecaster"))
        state5 = states[300]
        begin = pd.to_datetime(state5["interval_start"], utc=True).min()
        forecasts = issue_forecasts(
            state5, forecaster=forecaster, horizons_min=horizons_min, every_min=every_min,
            first_issue=begin + pd.Timedelta(minutes=warmup_min),
        )  # fmt: skip
        if forecaster.name != "persistence":  # the plain baseline is always scored beside a model
            from roadtwin.twin.predict import Persistence

            forecasts.update(issue_forecasts(
                state5, forecaster=Persistence(), horizons_min=horizons_min, every_min=every_min,
                first_issue=begin + pd.Timedelta(minutes=warmup_min),
            ))  # fmt: skip
        write_forecasts(forecasts[forecaster.name], store=store)
        scores = compare_forecasts(forecasts, state5)
        seconds["forecast"] = time.perf_counter() - t0
        n_issues = forecasts[forecaster.name]["issued_at"].nunique()
        say(f"issued {n_issues} forecasts ({', '.join(map(str, horizons_min))} min ahead) with the "
            f"{label} ({seconds['forecast']:.1f} s)")  # fmt: skip
    return ReplayResult(
        state=states, forecasts=forecasts, scores=scores, forecaster=forecaster.name, label=label,
        rows_ingested=report.inserted, quarantined=report.quarantined, timezone=timezone, seconds=seconds,
    )  # fmt: skip
