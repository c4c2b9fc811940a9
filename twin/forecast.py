"""Traffic forecasting: a graph-temporal network over the zone's edges, its baselines, training and evaluation.

The model sees the last ``history`` aggregation steps of every edge's flow (veh/h) and speed (as a share
of the speed limit), the time of day, the weather flags and the historical average (same time of day, over
the training days) at each target time; it predicts flow and speed at every horizon for every edge as a
correction to that historical average. A temporal encoder shared by all edges (a layer over the whole window, or a GRU) encodes each edge's history, then
diffusion graph convolutions over the line graph of the network (edge ``i`` feeds edge ``j`` when
``to[i] == from[j]``; downstream and upstream neighbours get their own weights) mix neighbouring edges.

The congestion level of an edge is derived from its (predicted) speed as a share of the speed limit, with
the bins of :data:`CONGESTION_BINS`: free, moderate, heavy, severe.

Metrics (:func:`forecast_metrics`): MAE, RMSE and MAPE per horizon; MAPE divides by ``max(|actual|,
floor)`` so that near-empty edges (a flow of 0 veh/h) do not blow it up: the floors are
:data:`MAPE_FLOORS` (60 veh/h, i.e. 5 vehicles in 5 minutes; 5 km/h).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roadtwin._io import atomic_path, write_yaml
from roadtwin.errors import ConfigError, require
from roadtwin.twin.dataset import WEATHERS, DaySet, load_days
from roadtwin.twin.forecast_metrics import MAPE_FLOORS, forecast_metrics

torch = require("torch", extra="twin")
nn = torch.nn

__all__ = [
    "CONGESTION_BINS",
    "CONGESTION_LEVELS",
    "MAPE_FLOORS",
    "ForecastConfig",
    "Prepared",
    "STForecaster",
    "congestion_level",
    "evaluate",
    "forecast_metrics",
    "historical_average",
    "line_graph",
    "load_checkpoint",
    "persistence",
    "prepare",
    "train",
]

#: Congestion levels, from the speed as a share of the speed limit (lower bounds of each level).
CONGESTION_LEVELS = ("free", "moderate", "heavy", "severe")
CONGESTION_BINS = (0.6, 0.4, 0.2)

VARIABLES = ("flow", "speed")


@dataclass(frozen=True)
class ForecastConfig:
    """Everything that defines a forecasting run (saved as the run's ``config.yaml``).

    Attributes
    ----------
    step_min
        Aggregation step of inputs and targets (minutes).
    history
        Number of past steps the model sees (``history * step_min`` minutes).
    horizons_min
        Forecast horizons in minutes (multiples of the data period).
    warmup_min
        Minutes at the start of each day left out (the simulation starts with an empty network).
    stride_min
        Minutes between two training samples.
    val_days, test_days
        Days held out for early stopping and for evaluation (the last days of the folder).
    temporal
        Encoder of each edge's history: ``mlp`` (a layer over the whole flattened window, a temporal
        convolution as wide as the window; ~10x cheaper to train on CPU) or ``gru``.
    hidden, graph_layers
        Width of the temporal encoder and of the graph convolutions; number of graph convolutions.
    epochs, batch_size, lr, weight_decay, patience
        AdamW training with early stopping on the validation loss.
    seed
        Seed of initialisation and batch order.
    threads
        Torch CPU threads for training, evaluation and the latency measurement.
    """

    step_min: int = 5
    history: int = 12
    horizons_min: tuple[int, ...] = (15, 30, 60)
    warmup_min: int = 15
    stride_min: int = 1
    val_days: int = 2
    test_days: int = 3
    temporal: str = "mlp"
    hidden: int = 32
    graph_layers: int = 2
    epochs: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 10
    seed: int = 0
    threads: int = 2

    def as_dict(self) -> dict[str, Any]:
        """Return the config as plain YAML-friendly values."""
        d = dataclasses.asdict(self)
        d["horizons_min"] = list(self.horizons_min)
        return d


# --------------------------------------------------------------------------------------------- data


def line_graph(edge_from: Sequence[str], edge_to: Sequence[str]) -> np.ndarray:
    """Return the line graph's adjacency: ``A[i, j] = 1`` when edge ``i`` ends where edge ``j`` starts.

    U-turns (``j`` going back to where ``i`` came from) are left out.
    """
    n = len(edge_from)
    starts: dict[str, list[int]] = {}
    for j, f in enumerate(edge_from):
        starts.setdefault(f, []).append(j)
    adj = np.zeros((n, n), dtype=np.float32)
    for i, t in enumerate(edge_to):
        for j in starts.get(t, []):
            if edge_to[j] != edge_from[i]:
                adj[i, j] = 1.0
    return adj


def _row_normalised(adj: np.ndarray) -> np.ndarray:
    deg = adj.sum(axis=1, keepdims=True)
    return np.divide(adj, deg, out=np.zeros_like(adj), where=deg > 0)


def _neighbours(adj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Padded neighbour lists ``(N, K)`` of a weighted adjacency: indices and weights (0 for padding).

    Gathering ``K`` (at most ~5 on a road network) neighbours costs a fraction of a dense ``N x N`` product.
    """
    k = max(1, int((adj > 0).sum(axis=1).max()))
    idx = np.zeros((adj.shape[0], k), dtype=np.int64)
    w = np.zeros((adj.shape[0], k), dtype=np.float32)
    for i, row in enumerate(adj):
        nz = np.flatnonzero(row)
        idx[i, : len(nz)], w[i, : len(nz)] = nz, row[nz]
    return idx, w


def _aggregate(days: DaySet, *, step_min: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing ``step_min`` aggregates at every period: flow (veh/h) and speed (km/h), ``(D, T, N)``."""
    k = round(step_min * 60 / days.period_s)
    if k < 1 or abs(k * days.period_s - step_min * 60) > 1e-6:
        raise ConfigError(
            path=None, field="step_min", expected=f"a multiple of {days.period_s:g} s", got=step_min
        )

    def trailing(x: np.ndarray) -> np.ndarray:
        c = np.cumsum(x, axis=1, dtype=np.float64)
        out = np.full(x.shape, np.nan)
        out[:, k - 1] = c[:, k - 1]
        out[:, k:] = c[:, k:] - c[:, :-k]
        return out

    count, sampled, dist = trailing(days.count), trailing(days.sampled_s), trailing(days.distance_m)
    flow = count * 3600.0 / (step_min * 60)
    free = days.free_speed[None, None, :].astype(np.float64)
    speed = np.where(sampled > 0, dist / np.maximum(sampled, 1e-9), free) * 3.6
    speed = np.minimum(speed, free * 3.6 * 1.2)
    return flow.astype(np.float32), speed.astype(np.float32)


def historical_average(values: np.ndarray) -> np.ndarray:
    """Return the mean over days (axis 0) at each time of day: ``(D, T, ...) -> (T, ...)``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # times before the first whole step are all-NaN
        return np.nanmean(values, axis=0)


def persistence(values: np.ndarray, *, t: np.ndarray, horizon: int) -> np.ndarray:
    """Return the forecast "as now": the value at ``t`` stands for ``t + horizon`` (``horizon`` unused)."""
    del horizon
    return values[:, t]


def congestion_level(speed_kmh: np.ndarray, free_kmh: np.ndarray) -> np.ndarray:
    """Return the congestion level index (0 free ... 3 severe) of speeds against speed limits."""
    ratio = np.asarray(speed_kmh) / np.asarray(free_kmh)
    return np.select([ratio >= b for b in CONGESTION_BINS], [0, 1, 2], default=3).astype(np.int64)


@dataclass
class Prepared:
    """Days turned into model-ready arrays.

    Attributes
    ----------
    flow, speed
        Trailing aggregates, ``(D, T, N)``, veh/h and km/h.
    free_kmh
        Speed limits in km/h, ``(N,)``.
    flow_scale
        Per-edge flow scale (mean training flow, at least 30 veh/h), ``(N,)``.
    ha_flow, ha_speed
        Historical averages over the training days, ``(T, N)``.
    loo_flow, loo_speed
        Leave-one-day-out historical averages for the training days, ``(D, T, N)`` (other days: ``ha``).
    t_index
        Sample times (period indices) valid for every horizon.
    split
        ``train``, ``val`` or ``test`` per day.
    tod
        Time of day of each period, in hours.
    """

    days: DaySet
    config: ForecastConfig
    flow: np.ndarray
    speed: np.ndarray
    free_kmh: np.ndarray
    flow_scale: np.ndarray
    ha_flow: np.ndarray
    ha_speed: np.ndarray
    loo_flow: np.ndarray
    loo_speed: np.ndarray
    t_index: np.ndarray
    split: list[str]
    tod: np.ndarray
    k: int
    horizons: list[int] = field(default_factory=list)

    def day_ids(self, part: str) -> list[int]:
        """Return the positions of the days in ``part`` (``train``, ``val`` or ``test``)."""
        return [i for i, s in enumerate(self.split) if s == part]


def prepare(days: DaySet, *, config: ForecastConfig, stats: dict[str, Any] | None = None) -> Prepared:
    """Aggregate, split and normalise ``days`` for ``config``.

    ``stats`` (from a checkpoint) replaces the statistics computed from the training days, so that a
    trained model sees exactly the normalisation and historical average it was trained with.
    """
    flow, speed = _aggregate(days, step_min=config.step_min)
    n_days, n_t, _ = flow.shape
    held = config.val_days + config.test_days
    if stats is None and n_days - held < 1:
        raise ConfigError(
            path=None,
            field="val_days + test_days",
            expected=f"fewer than the {n_days} days generated",
            got=held,
        )
    split = ["train"] * max(0, n_days - held) + ["val"] * config.val_days + ["test"] * config.test_days
    split = split[-n_days:] if len(split) > n_days else split
    k = round(config.step_min * 60 / days.period_s)
    horizons = []
    for h in config.horizons_min:
        steps = h * 60 / days.period_s
        if abs(steps - round(steps)) > 1e-6:
            raise ConfigError(
                path=None, field="horizons_min", expected=f"multiples of {days.period_s:g} s", got=h
            )
        horizons.append(round(steps))
    first = round(config.warmup_min * 60 / days.period_s) + config.history * k - 1
    last = n_t - 1 - max(horizons)
    stride = max(1, round(config.stride_min * 60 / days.period_s))
    if last < first:
        raise ConfigError(
            path=None, field="history, horizons_min, warmup_min",
            expected=f"warm-up + history + horizon within a day of {n_t * days.period_s / 60:g} min",
            got=f"{config.warmup_min} + {config.history} x {config.step_min} + {max(config.horizons_min)} min",
        )  # fmt: skip
    t_index = np.arange(first, last + 1, stride)
    train = [i for i, s in enumerate(split) if s == "train"]
    if stats is None:
        flow_scale = np.maximum(np.nanmean(flow[train][:, first:], axis=(0, 1)), 30.0).astype(np.float32)
        ha_flow, ha_speed = historical_average(flow[train]), historical_average(speed[train])
    else:
        flow_scale, ha_flow, ha_speed = stats["flow_scale"], stats["ha_flow"][:n_t], stats["ha_speed"][:n_t]
    loo_flow = np.broadcast_to(ha_flow, flow.shape).copy()
    loo_speed = np.broadcast_to(ha_speed, speed.shape).copy()
    if stats is None and len(train) > 1:
        m = len(train)
        for i in train:
            loo_flow[i] = (ha_flow * m - flow[i]) / (m - 1)
            loo_speed[i] = (ha_speed * m - speed[i]) / (m - 1)
    tod = (days.begin_s + (np.arange(n_t) + 1) * days.period_s) / 3600.0
    return Prepared(
        days=days, config=config, flow=flow, speed=speed, free_kmh=days.free_speed * 3.6,
        flow_scale=np.asarray(flow_scale, dtype=np.float32), ha_flow=np.asarray(ha_flow, dtype=np.float32),
        ha_speed=np.asarray(ha_speed, dtype=np.float32), loo_flow=loo_flow.astype(np.float32),
        loo_speed=loo_speed.astype(np.float32), t_index=t_index, split=split, tod=tod, k=k, horizons=horizons,
    )  # fmt: skip


def _batch(p: Prepared, day: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Any, Any]:
    """Model inputs and normalised targets for samples ``(day[i], t[i])``."""
    cfg = p.config
    lags = t[:, None] - p.k * np.arange(cfg.history - 1, -1, -1)[None, :]  # (B, H)
    d = day[:, None]
    fl = p.flow[d, lags] / p.flow_scale  # (B, H, N)
    sp = p.speed[d, lags] / p.free_kmh
    tod = (p.tod[lags] - 8.0)[:, :, None] * np.ones_like(fl)
    x = np.stack([fl, sp, tod], axis=-1)  # (B, H, N, 3)
    w = np.zeros((len(day), len(WEATHERS)), dtype=np.float32)
    w[np.arange(len(day)), p.days.weather[day]] = 1.0
    tgt = t[:, None] + np.asarray(p.horizons)[None, :]  # (B, K)
    ctx = np.stack(
        [p.loo_flow[d, tgt] / p.flow_scale, p.loo_speed[d, tgt] / p.free_kmh], axis=-1
    )  # (B,K,N,2)
    y = np.stack([p.flow[d, tgt] / p.flow_scale, p.speed[d, tgt] / p.free_kmh], axis=-1)
    return (
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(w),
        torch.from_numpy(ctx.transpose(0, 2, 1, 3).astype(np.float32)),  # (B, N, K, 2)
        torch.from_numpy(y.transpose(0, 2, 1, 3).astype(np.float32)),
    )


# -------------------------------------------------------------------------------------------- model


class STForecaster(nn.Module):  # type: ignore[misc,name-defined]
    """Temporal encoder per edge, diffusion graph convolutions over the line graph, residual on the HA.

    Parameters
    ----------
    adjacency
        ``(N, N)`` line-graph adjacency (edge ``i`` feeds edge ``j``).
    n_features
        Features per edge and time step.
    n_global
        Global features (weather flags).
    n_horizons
        Number of horizons predicted.
    hidden, graph_layers
        Widths and depth.
    history
        Time steps in the input window.
    temporal
        ``mlp`` (a layer over the flattened window) or ``gru`` (a GRU shared by all edges).
    """

    def __init__(
        self, *, adjacency: np.ndarray, n_features: int = 3, n_global: int = len(WEATHERS), n_horizons: int = 3,
        hidden: int = 32, graph_layers: int = 2, history: int = 12, temporal: str = "mlp",
    ) -> None:  # fmt: skip
        super().__init__()
        if temporal not in ("mlp", "gru"):
            raise ValueError(f"temporal must be 'mlp' or 'gru', got {temporal!r}")
        self.temporal = temporal
        for name, adj in (("down", adjacency), ("up", adjacency.T)):
            idx, w = _neighbours(_row_normalised(np.ascontiguousarray(adj)))
            self.register_buffer(f"{name}_idx", torch.from_numpy(idx))
            self.register_buffer(f"{name}_w", torch.from_numpy(w))
        self.inp = nn.Linear(n_features + n_global, hidden)
        if temporal == "gru":
            self.gru = nn.GRU(hidden, hidden, batch_first=True)
        else:
            self.window = nn.Sequential(
                nn.Linear(history * (n_features + n_global), 2 * hidden),
                nn.GELU(),
                nn.Linear(2 * hidden, hidden),
            )
        self.convs = nn.ModuleList(nn.Linear(3 * hidden, hidden) for _ in range(graph_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(graph_layers))
        self.n_horizons = n_horizons
        self.head = nn.Sequential(
            nn.Linear(hidden + 2 * n_horizons, hidden), nn.GELU(), nn.Linear(hidden, 2 * n_horizons)
        )

    def forward(self, x: Any, weather: Any, ctx: Any) -> Any:
        """Predict normalised (flow, speed) ``(B, N, K, 2)`` from ``x (B, H, N, F)``, ``weather (B, W)``, ``ctx (B, N, K, 2)``."""
        b, h, n, _ = x.shape
        g = weather[:, None, None, :].expand(b, h, n, weather.shape[-1])
        z = torch.cat([x, g], dim=-1)  # (B, H, N, F + W)
        if self.temporal == "gru":
            z = torch.relu(self.inp(z)).permute(0, 2, 1, 3).reshape(b * n, h, -1)
            _, last = self.gru(z)
            s = last[-1].reshape(b, n, -1)
        else:
            s = self.window(z.permute(0, 2, 1, 3).reshape(b, n, -1))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            down = (s[:, self.down_idx] * self.down_w[..., None]).sum(2)  # mean over downstream edges
            up = (s[:, self.up_idx] * self.up_w[..., None]).sum(2)
            mixed = torch.cat([s, down, up], dim=-1)
            s = norm(s + torch.relu(conv(mixed)))
        out = self.head(torch.cat([s, ctx.reshape(b, n, -1)], dim=-1)).reshape(b, n, self.n_horizons, 2)
        return ctx + out


def _build_model(p: Prepared) -> STForecaster:
    cfg = p.config
    adj = line_graph(p.days.edge_from, p.days.edge_to)
    return STForecaster(
        adjacency=adj, n_horizons=len(cfg.horizons_min), hidden=cfg.hidden, graph_layers=cfg.graph_layers,
        history=cfg.history, temporal=cfg.temporal,
    )  # fmt: skip


def _samples(p: Prepared, part: str) -> tuple[np.ndarray, np.ndarray]:
    ids = p.day_ids(part)
    day = np.repeat(np.asarray(ids, dtype=np.int64), len(p.t_index))
    t = np.tile(p.t_index, len(ids))
    return day, t


# ----------------------------------------------------------------------------------------- training


def _stats(p: Prepared) -> dict[str, Any]:
    return {"flow_scale": p.flow_scale, "ha_flow": p.ha_flow, "ha_speed": p.ha_speed}


def _save(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _loss_on(model: STForecaster, p: Prepared, day: np.ndarray, t: np.ndarray, batch: int) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(day), batch):
            x, w, c, y = _batch(p, day[i : i + batch], t[i : i + batch])
            total += float(torch.nn.functional.l1_loss(model(x, w, c), y, reduction="sum"))
            n += y.numel()
    return total / max(n, 1)


def train(
    *,
    days_dir: Path,
    out_dir: Path,
    config: ForecastConfig = ForecastConfig(),
    resume: bool = False,
    progress: bool | Callable[[int, int, float, float], None] = True,
) -> dict[str, Any]:
    """Train the forecaster on the days cached in ``days_dir``, writing a run folder ``out_dir``.

    ``out_dir`` receives ``config.yaml``, ``checkpoints/last.pt`` after every epoch (model, optimiser,
    epoch, early-stopping state, RNG, normalisation; written atomically), ``checkpoints/best.pt`` and
    ``history.csv``. With ``resume``, training continues from ``last.pt`` after a kill (``epochs``,
    ``patience`` and ``threads`` may change; the rest of ``config`` must be the run's).

    Returns
    -------
    dict
        ``epochs`` run in total, ``best_epoch``, ``best_val`` (normalised MAE), ``stopped_early``, ``seconds``.

    Raises
    ------
    ConfigError
        ``out_dir`` has a checkpoint and ``resume`` is off, or resuming with another config.
    """
    torch.set_num_threads(config.threads)
    ckpt_dir = out_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    state: dict[str, Any] | None = None
    if last_path.exists():
        if not resume:
            raise ConfigError(
                path=out_dir, field=None, expected="a new run folder, or --resume to continue this one"
            )
        state = torch.load(last_path, weights_only=False)
        if _fixed(state["config"]) != _fixed(config.as_dict()):
            raise ConfigError(path=out_dir, field="config", expected="the config the run was trained with")
    days = load_days(days_dir, days=state["days"] if state else None)
    p = prepare(days, config=config, stats=state["stats"] if state else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(out_dir / "config.yaml", {**config.as_dict(), "days_dir": str(days_dir), "days": days.days,
                                         "split": p.split})  # fmt: skip
    torch.manual_seed(config.seed)
    model = _build_model(p)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    epoch, best_val, best_epoch, bad, history = 0, float("inf"), 0, 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        epoch, best_val, best_epoch, bad, history = (
            state["epoch"], state["best_val"], state["best_epoch"], state["bad_epochs"], state["history"],
        )  # fmt: skip
    tr_day, tr_t = _samples(p, "train")
    va_day, va_t = _samples(p, "val") if p.day_ids("val") else _samples(p, "train")
    n_batches = int(np.ceil(len(tr_day) / config.batch_size))
    t0 = time.perf_counter()
    bar = None
    if progress is True:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("[bold]training[/] epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f} val {task.fields[val]:.4f}"), TimeElapsedColumn(),
        )  # fmt: skip
        task = bar.add_task("train", total=config.epochs * n_batches, completed=epoch * n_batches,
                            epoch=epoch, loss=float("nan"), val=best_val)  # fmt: skip
        bar.start()
    try:
        while epoch < config.epochs and bad < config.patience:
            model.train()
            order = np.random.default_rng([config.seed, epoch]).permutation(len(tr_day))
            running, seen = 0.0, 0
            for b in range(n_batches):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                x, w, c, y = _batch(p, tr_day[idx], tr_t[idx])
                loss = torch.nn.functional.l1_loss(model(x, w, c), y)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                running, seen = running + loss.item() * len(idx), seen + len(idx)
                if bar is not None:
                    bar.update(task, advance=1, loss=running / seen)
            epoch += 1
            val = _loss_on(model, p, va_day, va_t, 64)
            history.append(
                {"epoch": epoch, "train_loss": round(running / max(seen, 1), 6), "val_loss": round(val, 6)}
            )
            if val < best_val:
                best_val, best_epoch, bad = val, epoch, 0
                _save(ckpt_dir / "best.pt", {"model": model.state_dict(), "config": config.as_dict(),
                                             "stats": _stats(p), "days": days.days, "epoch": epoch})  # fmt: skip
            else:
                bad += 1
            _save(last_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "best_val": best_val,
                "best_epoch": best_epoch, "bad_epochs": bad, "history": history, "torch_rng": torch.get_rng_state(),
                "config": config.as_dict(), "stats": _stats(p), "days": days.days,
            })  # fmt: skip
            _write_csv(out_dir / "history.csv", history)
            if bar is not None:
                bar.update(task, epoch=epoch, val=val)
            elif callable(progress):
                progress(epoch, config.epochs, history[-1]["train_loss"], val)
    finally:
        if bar is not None:
            bar.stop()
    return {"epochs": epoch, "best_epoch": best_epoch, "best_val": best_val, "stopped_early": bad >= config.patience,
            "seconds": time.perf_counter() - t0}  # fmt: skip


#: Options a resumed run may change (train longer, wait longer, use more threads).
_RESUMABLE_CHANGES = ("epochs", "patience", "threads")


def _fixed(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _RESUMABLE_CHANGES}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------------------- evaluation


def load_checkpoint(run_dir: Path) -> tuple[dict[str, Any], ForecastConfig]:
    """Load a run's best checkpoint and its config."""
    path = run_dir / "checkpoints" / "best.pt"
    if not path.exists():
        raise ConfigError(path=run_dir, field=None, expected="a trained run with checkpoints/best.pt")
    ckpt = torch.load(path, weights_only=False)
    cfg = dict(ckpt["config"])
    cfg["horizons_min"] = tuple(cfg["horizons_min"])
    return ckpt, ForecastConfig(**cfg)


def evaluate(
    *,
    run_dir: Path,
    days_dir: Path | None = None,
    latency_runs: int = 100,
    threads: int = 1,
    plot: bool = True,
    replicas: int = 0,
) -> dict[str, Any]:
    """Evaluate a trained run on its held-out test days against the historical average and persistence.

    Writes ``metrics.csv`` (model, variable, horizon, MAE, RMSE, MAPE), ``metrics.json`` (the same
    with congestion-level accuracy and inference latency) and ``forecast.png`` into ``run_dir``.

    With ``replicas`` (the test days re-simulated that many times by
    :func:`roadtwin.twin.dataset.generate_replicas`), also scores ``replica_mean``: the mean of the
    replicas, an oracle that knows every condition of the day (demand, weather, incident, AV share) and
    none of its random draws, and estimates the **noise floor**, the lowest MAE any forecaster can reach
    on these days: the oracle's MAE / sqrt(1 + 1/replicas) (the error of a mean of ``replicas``
    independent draws shrinks by that factor; exact for Gaussian noise, close for counts).

    Inference (and the latency measurement) runs on ``threads`` torch threads: one thread is the
    fastest for a batch of one on a shared CPU (2.6 ms against 50 ms for two busy threads here).

    Returns
    -------
    dict
        ``rows`` (the metrics), ``latency_ms`` (median of ``latency_runs`` full-zone forward passes,
        batch 1), ``congestion_accuracy`` per model and horizon, ``n_samples``, ``edges``; with
        ``replicas``, ``noise_floor`` (MAE per ``"variable@horizon"``) and ``replicas``.
    """
    ckpt, cfg = load_checkpoint(run_dir)
    torch.set_num_threads(threads)
    if days_dir is None:
        import yaml

        days_dir = Path(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))["days_dir"])
    days = load_days(days_dir, days=ckpt["days"])
    p = prepare(days, config=cfg, stats=ckpt["stats"])
    model = _build_model(p)
    model.load_state_dict(ckpt["model"])
    model.eval()
    test = p.day_ids("test") or p.day_ids("val") or p.day_ids("train")
    te_day = np.repeat(np.asarray(test), len(p.t_index))
    te_t = np.tile(p.t_index, len(test))
    preds = []
    with torch.no_grad():
        for i in range(0, len(te_day), 64):
            x, w, c, _ = _batch(p, te_day[i : i + 64], te_t[i : i + 64])
            preds.append(model(x, w, c).numpy())
    pred = np.concatenate(preds)  # (S, N, K, 2)
    oracle = _replica_means(p, test=test, days_dir=days_dir, replicas=replicas) if replicas else None
    rows, acc, floor = [], {}, {}
    scale = np.stack([p.flow_scale, p.free_kmh], axis=-1)  # (N, 2)
    for k, (h_min, h) in enumerate(zip(cfg.horizons_min, p.horizons, strict=True)):
        tgt = te_t + h
        actual = {"flow": p.flow[te_day, tgt], "speed": p.speed[te_day, tgt]}
        forecasts = {
            "model": {"flow": pred[:, :, k, 0] * scale[:, 0], "speed": pred[:, :, k, 1] * scale[:, 1]},
            "historical_average": {"flow": p.ha_flow[tgt], "speed": p.ha_speed[tgt]},
            "persistence": {"flow": p.flow[te_day, te_t], "speed": p.speed[te_day, te_t]},
        }
        if oracle is not None:
            pos = np.searchsorted(np.asarray(test), te_day)
            forecasts["replica_mean"] = {"flow": oracle[0][pos, tgt], "speed": oracle[1][pos, tgt]}
        true_level = congestion_level(actual["speed"], p.free_kmh)
        for name, fc in forecasts.items():
            for var in VARIABLES:
                m = forecast_metrics(actual[var], fc[var], floor=MAPE_FLOORS[var])
                if name == "replica_mean":
                    floor[f"{var}@{h_min}"] = round(m["mae"] / float(np.sqrt(1 + 1 / replicas)), 4)
                rows.append(
                    {
                        "model": name,
                        "variable": var,
                        "horizon_min": h_min,
                        **{k2: round(v, 4) for k2, v in m.items()},
                    }
                )
            acc[f"{name}@{h_min}"] = round(
                float(np.mean(congestion_level(fc["speed"], p.free_kmh) == true_level)), 4
            )
    latency = _latency_ms(model, p, runs=latency_runs)
    result = {"rows": rows, "latency_ms": latency, "congestion_accuracy": acc, "n_samples": len(te_day),
              "edges": len(p.days.edges), "test_days": [p.days.days[i] for i in test], "threads": threads}  # fmt: skip
    if oracle is not None:
        result |= {"noise_floor": floor, "replicas": replicas}
    _write_csv(run_dir / "metrics.csv", rows)
    from roadtwin._io import write_json

    write_json(run_dir / "metrics.json", result)
    if plot:
        _plot(run_dir / "forecast.png", p, model, day=test[0])
    return result


def _replica_means(
    p: Prepared, *, test: list[int], days_dir: Path, replicas: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean flow and speed over the replicas of the ``test`` days, ``(len(test), T, N)`` each."""
    from roadtwin.twin.dataset import load_replicas

    reps = load_replicas(days_dir, days=[p.days.days[i] for i in test], replicas=replicas)
    agg = [_aggregate(r, step_min=p.config.step_min) for r in reps]
    n_t = p.flow.shape[1]
    return (
        np.mean([a[0][:, :n_t] for a in agg], axis=0),
        np.mean([a[1][:, :n_t] for a in agg], axis=0),
    )


def _latency_ms(model: STForecaster, p: Prepared, *, runs: int) -> float:
    x, w, c, _ = _batch(p, np.asarray([0]), p.t_index[:1])
    times = []
    with torch.inference_mode():
        for _ in range(5):
            model(x, w, c)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x, w, c)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def _plot(path: Path, p: Prepared, model: STForecaster, *, day: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = p.config
    k = len(cfg.horizons_min) // 2
    h = p.horizons[k]
    busiest = np.argsort(-np.nanmean(p.flow[day], axis=0))[:4]
    t = p.t_index
    with torch.no_grad():
        x, w, c, _ = _batch(p, np.full(len(t), day), t)
        pred = model(x, w, c).numpy()
    fig, axes = plt.subplots(len(busiest), 2, figsize=(11, 2.4 * len(busiest)), squeeze=False)
    hours = p.tod[t + h]
    for row, e in enumerate(busiest):
        for col, (var, unit, scale) in enumerate(
            (("flow", "veh/h", p.flow_scale[e]), ("speed", "km/h", p.free_kmh[e]))
        ):
            ax = axes[row, col]
            actual = (p.flow if var == "flow" else p.speed)[day]
            ax.plot(p.tod, actual[:, e], color="0.6", lw=1, label="actual")
            ax.plot(hours, pred[:, e, k, col] * scale, color="C0", label=f"model +{cfg.horizons_min[k]} min")
            ax.plot(
                hours,
                (p.ha_flow if var == "flow" else p.ha_speed)[t + h, e],
                color="C1",
                ls="--",
                label="historical avg",
            )
            ax.plot(hours, actual[t, e], color="C2", ls=":", label="persistence")
            ax.set_title(f"{p.days.edges[e]} {var}", fontsize=9)
            ax.set_ylabel(unit)
    from matplotlib.ticker import FuncFormatter

    clock = FuncFormatter(lambda h, _: f"{int(h):02d}:{round(h % 1 * 60) % 60:02d}")
    for ax in axes.ravel():
        ax.xaxis.set_major_formatter(clock)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"day {p.days.days[day]}: forecast vs actual at +{cfg.horizons_min[k]} min")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
