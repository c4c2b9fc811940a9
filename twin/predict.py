"""Issuing forecasts from the twin's estimated state, scoring them, and writing them to the store.

The twin forecasts what it can observe: its own estimated state (:func:`~roadtwin.twin.estimation.estimate_state`
at one resolution, 5 minutes by default). At every issue time (the end of an estimated interval, every
``every_min`` minutes) a forecaster predicts each edge's flow and speed for the interval ending
``horizon_min`` later. Forecasters:

- ``persistence``: the last estimated interval stands for every horizon (needs nothing but the state);
- ``model``: a trained graph-temporal forecaster (``roadtwin twin forecast train``), when one is given
  (:class:`ModelForecaster`); it also brings its historical average (same time of day over its training
  days) as a second baseline, ``historical_average``.

The store table ``forecasts`` (:data:`FORECAST_COLUMNS`) holds one row per edge, issue time and
horizon: ``issued_at`` is the end of the last interval the forecaster saw, ``target_at = issued_at +
horizon`` the end of the predicted interval (of ``resolution_s``), so a forecast lines up with the state
row whose ``interval_start + resolution_s`` equals its ``target_at``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from roadtwin.errors import InputError
from roadtwin.twin.forecast_metrics import MAPE_FLOORS, forecast_metrics

__all__ = [
    "FORECAST_COLUMNS",
    "Forecaster",
    "ModelForecaster",
    "Persistence",
    "best_forecaster",
    "compare_forecasts",
    "find_checkpoint",
    "issue_forecasts",
    "score_forecasts",
    "write_forecasts",
]

#: Columns of the store table ``forecasts``, in order, with their SQL types.
FORECAST_COLUMNS: dict[str, str] = {
    "edge": "VARCHAR",
    "issued_at": "TIMESTAMPTZ",
    "horizon_min": "INTEGER",
    "target_at": "TIMESTAMPTZ",
    "resolution_s": "INTEGER",
    "flow_veh_h": "DOUBLE",
    "speed_kmh": "DOUBLE",
    "method": "VARCHAR",
}


@dataclass(frozen=True)
class _Grid:
    """The estimated state as arrays: ``T`` intervals by ``N`` edges."""

    edges: list[str]
    starts: pd.DatetimeIndex
    resolution_s: int
    flow: np.ndarray
    speed: np.ndarray


class Forecaster(Protocol):
    """Predicts ``(flow, speed)``, each ``(len(issues), len(horizons), N)``, from the state up to each issue."""

    name: str

    def predict(
        self, grid: _Grid, *, issues: np.ndarray, horizons: Sequence[int]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Return ``{method: (flow, speed)}``: the forecaster's own and any baselines it brings."""
        ...


class Persistence:
    """The last estimated interval stands for every horizon."""

    name = "persistence"

    def predict(
        self, grid: _Grid, *, issues: np.ndarray, horizons: Sequence[int]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """See :class:`Forecaster`."""
        k = len(horizons)
        flow = np.repeat(grid.flow[issues][:, None, :], k, axis=1)
        speed = np.repeat(grid.speed[issues][:, None, :], k, axis=1)
        return {self.name: (flow, speed)}


def _grid(state: pd.DataFrame) -> _Grid:
    if state.empty:
        raise InputError(path=None, field="state", expected="estimated rows (roadtwin twin estimate)")
    res = state["resolution_s"].unique()
    if len(res) != 1:
        raise InputError(path=None, field="resolution_s", expected="one resolution", got=sorted(res.tolist()))
    t = pd.to_datetime(state["interval_start"], utc=True)
    frame = state.assign(interval_start=t)
    flow = frame.pivot_table(index="interval_start", columns="edge", values="flow_veh_h", aggfunc="mean")
    speed = frame.pivot_table(index="interval_start", columns="edge", values="speed_kmh", aggfunc="mean")
    step = pd.Timedelta(seconds=int(res[0]))
    starts = pd.date_range(flow.index.min(), flow.index.max(), freq=step)
    flow, speed = flow.reindex(starts), speed.reindex(index=starts, columns=flow.columns)
    return _Grid(
        edges=[str(e) for e in flow.columns], starts=starts, resolution_s=int(res[0]),
        flow=flow.to_numpy(dtype=np.float64), speed=speed.to_numpy(dtype=np.float64),
    )  # fmt: skip


def issue_forecasts(
    state: pd.DataFrame,
    *,
    forecaster: Forecaster | None = None,
    horizons_min: Sequence[int] = (15, 30, 60),
    every_min: int = 5,
    first_issue: pd.Timestamp | None = None,
) -> dict[str, pd.DataFrame]:
    """Forecast every edge ``horizons_min`` ahead from each issue time of the estimated state.

    Parameters
    ----------
    state
        Estimated state of one resolution (the frame of :func:`~roadtwin.twin.estimation.estimate_state`
        or the store table ``state`` filtered to one ``resolution_s``).
    forecaster
        :class:`Persistence` (default) or a :class:`ModelForecaster`.
    horizons_min
        Horizons in minutes, multiples of the state's resolution.
    every_min
        Minutes between two issue times (a multiple of the resolution).
    first_issue
        No forecast is issued before this time (e.g. the end of the simulation's warm-up).

    Returns
    -------
    dict
        ``{method: frame}`` with the :data:`FORECAST_COLUMNS`: the forecaster's own forecasts first, then
        any baselines it brings (the historical average of a trained model).

    Raises
    ------
    InputError
        Horizons or the issue interval are not multiples of the state's resolution.
    """
    forecaster = forecaster or Persistence()
    grid = _grid(state)
    res_min = grid.resolution_s / 60.0
    for name, values in (("horizons_min", list(horizons_min)), ("every_min", [every_min])):
        bad = [v for v in values if v <= 0 or abs(v / res_min - round(v / res_min)) > 1e-9]
        if bad:
            raise InputError(
                path=None, field=name, expected=f"positive multiples of the state's {res_min:g} min", got=bad
            )
    steps = [round(h / res_min) for h in horizons_min]
    issues = np.arange(0, len(grid.starts), round(every_min / res_min))
    ends = grid.starts + pd.Timedelta(seconds=grid.resolution_s)
    if first_issue is not None:
        issues = issues[ends[issues] >= pd.Timestamp(first_issue)]
    out: dict[str, pd.DataFrame] = {}
    if len(issues) == 0:
        return {forecaster.name: pd.DataFrame(columns=list(FORECAST_COLUMNS))}
    for method, (flow, speed) in forecaster.predict(grid, issues=issues, horizons=steps).items():
        n_i, n_k, n_e = flow.shape
        issued = np.repeat(ends[issues].to_numpy(), n_k * n_e)
        horizon = np.tile(np.repeat(np.asarray(horizons_min, dtype=np.int64), n_e), n_i)
        frame = pd.DataFrame(
            {
                "edge": np.tile(np.asarray(grid.edges, dtype=object), n_i * n_k),
                "issued_at": pd.to_datetime(issued, utc=True),
                "horizon_min": horizon,
                "target_at": pd.to_datetime(issued, utc=True) + pd.to_timedelta(horizon, unit="min"),
                "resolution_s": grid.resolution_s,
                "flow_veh_h": np.maximum(flow.reshape(-1), 0.0),
                "speed_kmh": np.maximum(speed.reshape(-1), 0.0),
                "method": method,
            }
        )
        out[method] = frame.dropna(subset=["flow_veh_h", "speed_kmh"]).reset_index(drop=True)
    return out


def score_forecasts(forecasts: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """Score forecasts against the estimated state they predicted (rows whose target was estimated).

    Returns
    -------
    pandas.DataFrame
        One row per ``method``, ``variable`` (``flow`` veh/h, ``speed`` km/h) and ``horizon_min``:
        ``mae``, ``rmse``, ``mape`` (%, with :data:`~roadtwin.twin.forecast_metrics.MAPE_FLOORS`) and
        ``n`` (edge-intervals scored).
    """
    cols = ["method", "variable", "horizon_min", "mae", "rmse", "mape", "n"]
    if forecasts.empty:
        return pd.DataFrame(columns=cols)
    actual = state.assign(
        target_at=pd.to_datetime(state["interval_start"], utc=True)
        + pd.to_timedelta(state["resolution_s"], unit="s")
    )[["edge", "target_at", "resolution_s", "flow_veh_h", "speed_kmh"]]
    m = forecasts.merge(actual, on=["edge", "target_at", "resolution_s"], suffixes=("", "_actual"))
    rows = []
    for (method, h), g in m.groupby(["method", "horizon_min"], sort=True):
        for var, col in (("flow", "flow_veh_h"), ("speed", "speed_kmh")):
            s = forecast_metrics(g[f"{col}_actual"].to_numpy(), g[col].to_numpy(), floor=MAPE_FLOORS[var])
            rows.append({"method": method, "variable": var, "horizon_min": int(h), **s, "n": len(g)})
    return pd.DataFrame(rows, columns=cols)


def compare_forecasts(forecasts: dict[str, pd.DataFrame], state: pd.DataFrame) -> pd.DataFrame:
    """Score several methods on the same forecasts: the (edge, issue time, horizon) every method issued.

    A trained model needs a full history window before its first forecast, the baselines do not; scoring
    each on its own rows would compare different hours of the day.
    """
    key = ["edge", "issued_at", "horizon_min"]
    frames = [f for f in forecasts.values() if not f.empty]
    if not frames:
        return score_forecasts(pd.DataFrame(columns=list(FORECAST_COLUMNS)), state)
    common = frames[0][key]
    for f in frames[1:]:
        common = common.merge(f[key], on=key)
    parts = [f.merge(common, on=key) for f in frames]
    return pd.concat([score_forecasts(f, state) for f in parts], ignore_index=True)


def write_forecasts(forecasts: pd.DataFrame, *, store: Any) -> int:
    """Insert or replace ``forecasts`` in the store table ``forecasts``; return the rows written.

    Rows are keyed by (``edge``, ``issued_at``, ``horizon_min``, ``resolution_s``, ``method``), so issuing
    the same forecasts again adds nothing.
    """
    con = store.con
    cols = ", ".join(f"{c} {t}" for c, t in FORECAST_COLUMNS.items())
    con.execute(
        f"CREATE TABLE IF NOT EXISTS forecasts ({cols}, "
        "PRIMARY KEY (edge, issued_at, horizon_min, resolution_s, method))"
    )
    if forecasts.empty:
        return 0
    con.register("_forecasts", forecasts[list(FORECAST_COLUMNS)])
    try:
        con.execute(f"INSERT OR REPLACE INTO forecasts SELECT {', '.join(FORECAST_COLUMNS)} FROM _forecasts")
    finally:
        con.unregister("_forecasts")
    return len(forecasts)


def find_checkpoint(workspace: Any) -> Path | None:
    """Return the newest trained forecast run of a workspace (``forecast/<run>/checkpoints/best.pt``)."""
    base = Path(workspace.root) / "forecast"
    runs = [p.parent.parent for p in base.glob("*/checkpoints/best.pt")] if base.is_dir() else []
    return max(runs, key=lambda p: (p / "checkpoints" / "best.pt").stat().st_mtime) if runs else None


class ModelForecaster:
    """A trained graph-temporal forecaster (``roadtwin twin forecast train``) applied to the estimated state.

    The model was trained on 1-minute steps of trailing 5-minute aggregates; a 5-minute state is exactly
    those aggregates at the interval ends, so its inputs are the last ``history`` intervals, the local time
    of day, the weather and the historical average of its training days at each target time. Edges the
    model does not know are left out; edges the state lacks are taken at their historical average.

    Parameters
    ----------
    run_dir
        The forecast run folder (``checkpoints/best.pt`` and ``config.yaml`` naming its days folder).
    weather
        The observed day's weather condition (one of :data:`~roadtwin.twin.dataset.WEATHERS`).
    timezone
        The zone's time zone: the model's time of day is local.
    """

    name = "model"

    def __init__(self, run_dir: str | os.PathLike[str], *, weather: str = "clear", timezone: str) -> None:
        import json

        import yaml

        from roadtwin.twin.dataset import WEATHERS
        from roadtwin.twin.forecast import load_checkpoint

        self.run_dir = Path(run_dir)
        self.ckpt, self.config = load_checkpoint(self.run_dir)
        run_cfg = yaml.safe_load((self.run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        days_dir = Path(str(run_cfg.get("days_dir", "")))
        manifest_path = days_dir / "manifest.json"
        if not manifest_path.is_file():
            raise InputError(
                path=self.run_dir / "config.yaml", field="days_dir",
                expected="the days folder the model was trained on (its manifest.json)", got=str(days_dir),
            )  # fmt: skip
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.weather = WEATHERS.index(weather) if weather in WEATHERS else 0
        self.timezone = timezone
        if self.config.step_min != 5:
            raise InputError(path=self.run_dir, field="step_min", expected="a model of 5-minute steps",
                             got=self.config.step_min)  # fmt: skip

    def predict(
        self, grid: _Grid, *, issues: np.ndarray, horizons: Sequence[int]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """See :class:`Forecaster`; also returns the model's ``historical_average``."""
        import torch

        from roadtwin.twin.dataset import WEATHERS
        from roadtwin.twin.forecast import STForecaster, line_graph

        cfg = self.config
        if grid.resolution_s != cfg.step_min * 60:
            raise InputError(path=None, field="resolution_s", expected=f"{cfg.step_min * 60} s state",
                             got=grid.resolution_s)  # fmt: skip
        edges = list(self.manifest["edges"])
        col = {e: i for i, e in enumerate(grid.edges)}
        take = np.asarray([col.get(e, -1) for e in edges])
        n = len(edges)
        free = np.asarray(self.manifest["free_speed"], dtype=np.float64) * 3.6
        stats = self.ckpt["stats"]
        flow_scale = np.asarray(stats["flow_scale"], dtype=np.float64)
        ha_flow, ha_speed = np.asarray(stats["ha_flow"]), np.asarray(stats["ha_speed"])
        period = float(self.manifest["period_s"])
        begin = float(_clock_s(self.manifest["window"][0]))
        ends = grid.starts + pd.Timedelta(seconds=grid.resolution_s)
        local = ends.tz_convert(self.timezone)
        tod_s = (local.hour * 3600 + local.minute * 60 + local.second).to_numpy(dtype=np.float64)

        def ha_at(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            idx = np.clip(np.round((seconds - begin) / period).astype(int) - 1, 0, len(ha_flow) - 1)
            return ha_flow[idx], ha_speed[idx]  # (..., N)

        # The state in the model's edge order; edges the state lacks take the historical average.
        ha_f_all, ha_s_all = ha_at(tod_s)
        flow = np.where(take >= 0, grid.flow[:, np.maximum(take, 0)], np.nan)
        speed = np.where(take >= 0, grid.speed[:, np.maximum(take, 0)], np.nan)
        flow = np.where(np.isfinite(flow), flow, ha_f_all)
        speed = np.where(np.isfinite(speed), speed, ha_s_all)
        model = STForecaster(
            adjacency=line_graph(self.manifest["edge_from"], self.manifest["edge_to"]),
            n_horizons=len(cfg.horizons_min), hidden=cfg.hidden, graph_layers=cfg.graph_layers,
            history=cfg.history, temporal=cfg.temporal,
        )  # fmt: skip
        model.load_state_dict(self.ckpt["model"])
        model.eval()
        trained = [round(h * 60 / grid.resolution_s) for h in cfg.horizons_min]
        pick = [trained.index(h) if h in trained else -1 for h in horizons]
        if min(pick) < 0:
            raise InputError(path=self.run_dir, field="horizons_min", expected=f"horizons the model was "
                             f"trained for ({list(cfg.horizons_min)} min)", got=[h * grid.resolution_s // 60 for h in horizons])  # fmt: skip
        k = len(horizons)
        out_f = np.full((len(issues), k, n), np.nan)
        out_s = np.full((len(issues), k, n), np.nan)
        # The historical average at every trained horizon: the model's context and the second baseline.
        target_s = tod_s[issues][:, None] + np.asarray(trained)[None, :] * grid.resolution_s  # (I, Kt)
        hf, hs = ha_at(target_s)  # (I, Kt, N)
        ok = issues >= cfg.history - 1
        if ok.any():
            t = issues[ok]
            lags = t[:, None] - np.arange(cfg.history - 1, -1, -1)[None, :]  # (B, H)
            fl = flow[lags] / flow_scale
            sp = speed[lags] / free
            tod = (tod_s[lags] / 3600.0 - 8.0)[:, :, None] * np.ones_like(fl)
            x = np.stack([fl, sp, tod], axis=-1).astype(np.float32)
            w = np.zeros((len(t), len(WEATHERS)), dtype=np.float32)
            w[:, self.weather] = 1.0
            ctx = np.stack([hf[ok] / flow_scale, hs[ok] / free], axis=-1).transpose(0, 2, 1, 3)  # (B,N,Kt,2)
            with torch.no_grad():
                pred = model(
                    torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(ctx.astype(np.float32))
                ).numpy()
            for j, p in enumerate(pick):
                out_f[ok, j] = pred[:, :, p, 0] * flow_scale
                out_s[ok, j] = pred[:, :, p, 1] * free
        ha_f, ha_s = hf[:, pick], hs[:, pick]
        # Back to the state's edge order (edges the model does not know stay empty: dropped later).
        back = {e: i for i, e in enumerate(edges)}
        idx = np.asarray([back.get(e, -1) for e in grid.edges])

        def reorder(a: np.ndarray) -> np.ndarray:
            return np.where(idx >= 0, a[..., np.maximum(idx, 0)], np.nan)

        return {
            "model": (reorder(out_f), reorder(out_s)),
            "historical_average": (reorder(ha_f), reorder(ha_s)),
        }


def _clock_s(text: str) -> float:
    from roadtwin.sim.scenario import parse_time

    return float(parse_time(text))


def best_forecaster(
    workspace: Any, *, weather: str = "clear", timezone: str = "Asia/Shanghai"
) -> tuple[Forecaster, str]:
    """Return the best forecaster available in ``workspace`` and a sentence saying which it is and why.

    The newest trained forecast run (:func:`find_checkpoint`) when there is one that loads, else
    :class:`Persistence`.
    """
    run = find_checkpoint(workspace)
    if run is None:
        return Persistence(), (
            "persistence baseline (the last estimated 5 minutes stand for the next hour): this workspace "
            "has no trained forecaster (roadtwin twin forecast generate, then train)"
        )
    try:
        return ModelForecaster(run, weather=weather, timezone=timezone), f"trained forecaster {run.name}"
    except (InputError, OSError, KeyError, ValueError) as exc:
        return Persistence(), f"persistence baseline: the trained forecaster {run.name} did not load ({exc})"
