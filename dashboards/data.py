"""Everything the dashboard reads from a workspace, in one place.

Every path is resolved and checked to lie inside the workspace (:func:`resolve_inside`); a name that
leads elsewhere (``../x``, an absolute path, a symlink out) raises :class:`PathOutsideWorkspace`.
Reads are cached by the file's modification time, so a callback pays for parsing a run once.
Nothing here writes to the workspace.

Folders read: ``runs/<id>/`` (simulation runs: ``config.yaml``, ``metrics.json``, ``edgedata.xml``;
training runs: ``config.yaml`` with a ``train`` section, ``tb/``, ``train.json``, ``best/best.json``),
``evaluations/<id>/`` (``results.csv``, ``summary.csv``), ``datasets/<name>/`` (``manifest.json`` or
``manifest.yaml``), ``networks/`` and the twin's DuckDB store (tables :data:`FORECAST_COLUMNS` and
:data:`STATE_COLUMNS`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from roadtwin.errors import RoadTwinError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONGESTION_BINS",
    "FORECAST_COLUMNS",
    "FORECAST_TABLE",
    "METHOD_LABELS",
    "METHOD_ORDER",
    "STATE_COLUMNS",
    "STATE_TABLE",
    "ZONE_TIMEZONE",
    "NetworkView",
    "PathOutsideWorkspace",
    "WorkspaceData",
    "mtime_ns",
    "resolve_inside",
]

#: The twin's forecast table in ``workspace.store_path`` (written by ``roadtwin.twin.predict.write_forecasts``):
#: one row per (edge, issue time, horizon, method). ``issued_at`` is the end of the last interval the
#: forecaster saw, ``target_at = issued_at + horizon`` the end of the predicted interval of ``resolution_s``.
FORECAST_TABLE = "forecasts"
FORECAST_COLUMNS: dict[str, str] = {
    "edge": "VARCHAR",  # a SUMO edge id of the zone's network
    "issued_at": "TIMESTAMPTZ",
    "horizon_min": "INTEGER",  # 15, 30 or 60
    "target_at": "TIMESTAMPTZ",
    "resolution_s": "INTEGER",
    "flow_veh_h": "DOUBLE",
    "speed_kmh": "DOUBLE",
    "method": "VARCHAR",  # model, persistence, historical_average
}
#: The twin's estimated state in the store (``roadtwin.twin.estimation.write_state``): one row per (edge,
#: interval, resolution), the "actual" of the forecasts.
STATE_TABLE = "state"
STATE_COLUMNS: dict[str, str] = {
    "edge": "VARCHAR",
    "interval_start": "TIMESTAMPTZ",
    "resolution_s": "INTEGER",  # 60 or 300
    "speed_kmh": "DOUBLE",
    "flow_veh_h": "DOUBLE",
    "density_veh_km": "DOUBLE",
    "confidence": "DOUBLE",
}
#: The zone's local time: store times are UTC and shown in it.
ZONE_TIMEZONE = "Asia/Shanghai"
#: Forecast methods in order of preference when the store holds several.
METHOD_ORDER = ("model", "historical_average", "persistence")
METHOD_LABELS = {
    "model": "trained forecaster",
    "historical_average": "historical average",
    "persistence": "persistence baseline",
}

#: Congestion classes of an edge by speed relative to its limit: (lower bound, label, colour).
CONGESTION_BINS: tuple[tuple[float, str, str], ...] = (
    (0.8, "free (>= 80 % of limit)", "#1a9850"),
    (0.6, "light (60-80 %)", "#91cf60"),
    (0.4, "moderate (40-60 %)", "#fdae61"),
    (0.2, "heavy (20-40 %)", "#f46d43"),
    (0.0, "jammed (< 20 %)", "#a50026"),
)
NO_TRAFFIC = ("no vehicles in interval", "#bdbdbd")

P = ParamSpec("P")
R = TypeVar("R")


class PathOutsideWorkspace(RoadTwinError):
    """A name given to the dashboard resolves to a path outside its workspace."""

    exit_code = 2


def resolve_inside(root: Path, *parts: str) -> Path:
    """Return ``root / parts`` resolved, if it lies inside ``root``.

    Parameters
    ----------
    root
        The workspace folder.
    parts
        Relative path parts (names chosen in the UI, e.g. a run id).

    Raises
    ------
    PathOutsideWorkspace
        A part is absolute, or the resolved path (symlinks followed) leaves ``root``.
    """
    base = Path(root).resolve()
    for part in parts:
        if not isinstance(part, str) or not part or Path(part).is_absolute() or "\x00" in part:
            raise PathOutsideWorkspace(f"not a name inside the workspace: {part!r}")
    target = base.joinpath(*parts).resolve()
    if target != base and not target.is_relative_to(base):
        raise PathOutsideWorkspace(f"{'/'.join(parts)!r} lies outside the workspace")
    return target


def mtime_ns(path: Path) -> int:
    """A file's modification time in ns (-1 when it cannot be read): the key of the dashboard's caches."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _by_mtime(func: Callable[P, R]) -> Callable[P, R]:
    """Cache ``func(self, path, ...)`` by the path's modification time (a changed file is re-read)."""
    cache: dict[tuple[Any, ...], Any] = {}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        path = args[1]
        key = (str(path), mtime_ns(path), args[2:], tuple(sorted(kwargs.items())))
        if key not in cache:
            if len(cache) > 256:
                cache.clear()
            cache[key] = func(*args, **kwargs)
        return cache[key]

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class NetworkView:
    """A network's drawable layers in lon/lat.

    Attributes
    ----------
    edges
        ``id, from, to, name, lanes, speed, length, lon, lat`` (``lon``/``lat`` are coordinate lists).
    signals
        ``id, junction, name, lon, lat, cycle, plan, incoming`` (``plan`` is ``[[state, seconds], ...]``,
        ``incoming`` the ids of edges entering the signal's junctions).
    """

    path: Path
    edges: pd.DataFrame
    signals: pd.DataFrame


class WorkspaceData:
    """Read-only access to one workspace for the dashboard.

    Parameters
    ----------
    root
        The workspace folder; it may be missing or empty (every listing is then empty).
    """

    def __init__(self, *, root: Path) -> None:
        self.root = Path(root).resolve()

    # --- paths --------------------------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        """Resolve names inside the workspace (see :func:`resolve_inside`)."""
        return resolve_inside(self.root, *parts)

    def entry(self, folder: str, name: str, *rest: str) -> Path:
        """Resolve ``folder/name/rest`` where ``name`` (a run id, evaluation or dataset) is one plain name.

        Raises
        ------
        PathOutsideWorkspace
            ``name`` is not a single path component, or the result leaves the workspace.
        """
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise PathOutsideWorkspace(f"not a name inside the workspace: {name!r}")
        return resolve_inside(self.root, folder, name, *rest)

    @property
    def exists(self) -> bool:
        """Whether the workspace folder exists."""
        return self.root.is_dir()

    def _children(self, folder: str) -> list[Path]:
        base = self.path(folder)
        if not base.is_dir():
            return []
        out = []
        for child in sorted(base.iterdir()):
            try:
                if child.is_dir() and child.resolve().is_relative_to(self.root):
                    out.append(child)
            except OSError:
                continue
        return out

    # --- runs ---------------------------------------------------------------------------------------

    @_by_mtime
    def _yaml(self, path: Path) -> dict[str, Any]:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    @_by_mtime
    def _json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def runs(self, *, kind: str = "simulation") -> pd.DataFrame:
        """List run folders of ``kind`` (``"simulation"`` or ``"training"``), newest first.

        Columns: ``id, scenario, controller, seed, complete, begin_s, end_s``; for training runs
        ``controller`` holds the algorithm.
        """
        import pandas as pd

        rows = []
        for folder in self._children("runs"):
            config = self._yaml(folder / "config.yaml")
            is_training = "train" in config or (folder / "tb").is_dir()
            if (kind == "training") != is_training:
                continue
            parts = folder.name.split("__")
            scenario = config.get("scenario") if isinstance(config.get("scenario"), dict) else {}
            run = config.get("run") if isinstance(config.get("run"), dict) else {}
            complete = (folder / ("train.json" if is_training else "metrics.json")).is_file()
            rows.append(
                {
                    "id": folder.name,
                    "scenario": scenario.get("name", parts[0]),
                    "controller": run.get("controller", parts[1] if len(parts) > 1 else "?"),
                    "seed": parts[2] if len(parts) > 2 else "",
                    "complete": complete,
                    "mtime": mtime_ns(folder),
                }
            )
        frame = pd.DataFrame(rows, columns=["id", "scenario", "controller", "seed", "complete", "mtime"])
        return frame.sort_values("mtime", ascending=False, kind="stable").reset_index(drop=True)

    def run_options(self) -> list[dict[str, str]]:
        """Dropdown options of the complete simulation runs that have per-edge data, newest first."""
        runs = self.runs()
        out = []
        for row in runs.itertuples():
            if row.complete and (self.root / "runs" / row.id / "edgedata.xml").is_file():
                out.append(
                    {
                        "label": f"{row.scenario} · {row.controller} · seed {row.seed} ({row.id})",
                        "value": row.id,
                    }
                )
        return out

    def metrics(self, run_id: str) -> dict[str, Any]:
        """A run's ``metrics.json`` (empty for an incomplete run)."""
        return self._json(self.entry("runs", run_id, "metrics.json"))

    def run_config(self, run_id: str) -> dict[str, Any]:
        """A run's ``config.yaml``."""
        return self._yaml(self.entry("runs", run_id, "config.yaml"))

    def network_file(self, run_id: str) -> Path | None:
        """The network a run used, if it lies inside the workspace (else the workspace's copy, or ``None``)."""
        config = self.run_config(run_id)
        run = config.get("run") if isinstance(config.get("run"), dict) else {}
        candidates = []
        named = run.get("network_file")
        if isinstance(named, str) and named:
            p = Path(named)
            with contextlib.suppress(PathOutsideWorkspace):
                candidates.append(p.resolve() if p.is_absolute() else self.path(named))
        scenario = config.get("scenario") if isinstance(config.get("scenario"), dict) else {}
        net = scenario.get("network")
        if isinstance(net, str) and net and "/" not in net and "\\" not in net and net not in (".", ".."):
            candidates.append(self.root / "networks" / net / f"{net}.net.xml")
        for candidate in candidates:
            if candidate.is_relative_to(self.root) and candidate.is_file():
                return candidate
        return None

    def default_network(self) -> Path | None:
        """The first network under ``networks/`` (the built-in zone when it has been built)."""
        for folder in self._children("networks"):
            nets = sorted(folder.glob("*.net.xml"))
            if nets and nets[0].resolve().is_relative_to(self.root):
                return nets[0]
        return None

    # --- network ------------------------------------------------------------------------------------

    @_by_mtime
    def network(self, path: Path) -> NetworkView:
        """Drawable layers of the network at ``path`` (which must lie inside the workspace)."""
        import pandas as pd

        from roadtwin.maps.network import network_frames

        if not Path(path).resolve().is_relative_to(self.root):
            raise PathOutsideWorkspace(f"{path} lies outside the workspace")
        frames = network_frames(path)
        edges = pd.DataFrame(frames.edges.drop(columns="geometry"))
        # Six decimals (~0.1 m) is finer than any screen shows; full floats would double the maps' JSON.
        edges["lon"] = [[round(x, 6) for x in g.xy[0]] for g in frames.edges.geometry]
        edges["lat"] = [[round(y, 6) for y in g.xy[1]] for g in frames.edges.geometry]
        signals = pd.DataFrame(frames.signals.drop(columns="geometry"))
        by_to: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for e in edges.itertuples():
            by_to.setdefault(str(e.to), []).append(str(e.id))
            names[str(e.id)] = str(e.name or "")
        incoming, labels, plans = [], [], []
        for s in signals.itertuples():
            ins = [eid for j in str(s.junction).split(",") if j for eid in by_to.get(j, [])]
            incoming.append(ins)
            street = sorted({names[e] for e in ins if names.get(e)})
            labels.append(" × ".join(street[:3]) if street else str(s.id))
            try:
                plans.append(json.loads(s.plan))
            except (TypeError, ValueError):
                plans.append([])
        signals["incoming"] = incoming
        signals["name"] = labels
        signals["plan"] = plans
        signals = signals[
            [not (math.isnan(x) or math.isnan(y)) for x, y in zip(signals.lon, signals.lat, strict=True)]
        ]
        return NetworkView(
            path=Path(path), edges=edges.reset_index(drop=True), signals=signals.reset_index(drop=True)
        )

    @_by_mtime
    def _edgedata(self, path: Path) -> pd.DataFrame:
        import pandas as pd
        from lxml import etree

        fields = (
            "speed",
            "speedRelative",
            "density",
            "waitingTime",
            "timeLoss",
            "entered",
            "left",
            "departed",
            "arrived",
        )
        rows = []
        try:
            for _, interval in etree.iterparse(str(path), events=("end",), tag="interval"):
                begin, end = float(interval.get("begin", 0)), float(interval.get("end", 0))
                for edge in interval:
                    row: dict[str, Any] = {"begin": begin, "end": end, "edge": edge.get("id")}
                    for f in fields:
                        row[f] = float(edge.get(f, "nan"))
                    rows.append(row)
                interval.clear()
        except (OSError, etree.XMLSyntaxError):
            pass
        return pd.DataFrame(rows, columns=["begin", "end", "edge", *fields])

    def edgedata(self, run_id: str) -> pd.DataFrame:
        """A run's per-edge 5-minute data: ``begin, end, edge, speed, speedRelative, waitingTime, timeLoss, ...``."""
        return self._edgedata(self.entry("runs", run_id, "edgedata.xml"))

    def intervals(self, run_id: str) -> list[float]:
        """Begin times (s of the day) of a run's edge-data intervals."""
        data = self.edgedata(run_id)
        return sorted(data["begin"].unique().tolist()) if len(data) else []

    def junction_series(self, run_id: str, *, signal: str) -> pd.DataFrame:
        """Per interval KPIs of one signal's approaches: ``begin, delay_s, queue_veh, vehicles``.

        ``delay_s`` is the time loss per vehicle that left an approach; ``queue_veh`` the mean number of
        halting vehicles on the approaches (summed waiting seconds over the interval length).
        """
        import pandas as pd

        net = self.network_file(run_id)
        cols = ["begin", "delay_s", "queue_veh", "vehicles"]
        if net is None:
            return pd.DataFrame(columns=cols)
        view = self.network(net)
        match = view.signals[view.signals.id == signal]
        if match.empty:
            return pd.DataFrame(columns=cols)
        data = self.edgedata(run_id)
        part = data[data.edge.isin(match.iloc[0].incoming)]
        if part.empty:
            return pd.DataFrame(columns=cols)
        grouped = part.groupby("begin").agg(
            end=("end", "first"),
            timeLoss=("timeLoss", "sum"),
            waiting=("waitingTime", "sum"),
            left=("left", "sum"),
            arrived=("arrived", "sum"),
        )
        period = (grouped["end"] - grouped.index).clip(lower=1.0)
        vehicles = grouped["left"] + grouped["arrived"]
        out = pd.DataFrame(
            {
                "delay_s": grouped["timeLoss"] / vehicles.clip(lower=1.0),
                "queue_veh": grouped["waiting"] / period,
                "vehicles": vehicles,
            }
        ).reset_index()
        return out[cols]

    def junction_table(self, run_id: str) -> pd.DataFrame:
        """Whole-run KPIs of every signal: ``signal, name, delay_s, queue_veh, vehicles``, worst first."""
        import numpy as np
        import pandas as pd

        cols = ["signal", "name", "delay_s", "queue_veh", "vehicles"]
        net = self.network_file(run_id)
        data = self.edgedata(run_id)
        if net is None or data.empty:
            return pd.DataFrame(columns=cols)
        view = self.network(net)
        span = max(float(data["end"].max() - data["begin"].min()), 1.0)
        per_edge = data.groupby("edge").agg(
            timeLoss=("timeLoss", "sum"),
            waiting=("waitingTime", "sum"),
            left=("left", "sum"),
            arrived=("arrived", "sum"),
        )
        # One join and one group-by over (signal position, incoming edge) pairs, not a reindex per signal.
        signals = view.signals
        links = pd.DataFrame(
            [(i, e) for i, ins in enumerate(signals["incoming"]) for e in ins], columns=["pos", "edge"]
        )
        sums = (
            links.join(per_edge, on="edge", how="inner")
            .groupby("pos")[["timeLoss", "waiting", "left", "arrived"]]
            .sum()
            .reindex(range(len(signals)), fill_value=0.0)
        )
        vehicles = (sums["left"] + sums["arrived"]).astype(float).to_numpy()
        out = pd.DataFrame(
            {
                "signal": signals["id"].to_numpy(),
                "name": signals["name"].to_numpy(),
                "delay_s": sums["timeLoss"].astype(float).to_numpy() / np.maximum(vehicles, 1.0),
                "queue_veh": sums["waiting"].astype(float).to_numpy() / span,
                "vehicles": vehicles,
            },
            columns=cols,
        )
        return out.sort_values("delay_s", ascending=False, kind="stable").reset_index(drop=True)

    # --- evaluations ----------------------------------------------------------------------------------

    def evaluations(self) -> list[str]:
        """Evaluation folders (``evaluations/<scenario>__<ts>/``) with a ``results.csv``, newest first."""
        found = [f for f in self._children("evaluations") if (f / "results.csv").is_file()]
        return [f.name for f in sorted(found, key=mtime_ns, reverse=True)]

    @_by_mtime
    def _csv(self, path: Path) -> pd.DataFrame:
        import pandas as pd

        try:
            return pd.read_csv(path)
        except (OSError, ValueError):
            return pd.DataFrame()

    def results(self, evaluation: str) -> pd.DataFrame:
        """An evaluation's ``results.csv`` (one row per controller and seed)."""
        return self._csv(self.entry("evaluations", evaluation, "results.csv"))

    def summary(self, evaluation: str) -> pd.DataFrame:
        """An evaluation's per-controller summary: ``summary.csv`` if written, else computed from results."""
        path = self.entry("evaluations", evaluation, "summary.csv")
        if path.is_file():
            frame = self._csv(path)
            if not frame.empty and "controller" in frame.columns:
                return frame
        results = self.results(evaluation)
        if results.empty or "controller" not in results.columns:
            return results
        numeric = results.select_dtypes("number").drop(columns=["seed", "wall_time_s"], errors="ignore")
        mean = numeric.groupby(results["controller"]).mean().round(2)
        mean.insert(0, "seeds", results.groupby("controller").size())
        return mean.reset_index()

    def run_id_of(self, run_dir: str) -> str | None:
        """The id of a run named by an evaluation's ``run_dir`` column, if it lies in this workspace."""
        if not isinstance(run_dir, str) or not run_dir:
            return None
        name = Path(run_dir).name
        try:
            path = self.entry("runs", name)
        except PathOutsideWorkspace:
            return None
        return name if path.is_dir() else None

    # --- training -----------------------------------------------------------------------------------

    def learning_curves(self, run_id: str) -> pd.DataFrame:
        """Scalars of a training run's TensorBoard logs: ``tag, step, value`` (empty without logs)."""
        import pandas as pd

        tb = self.entry("runs", run_id, "tb")
        files = (
            sorted(p for p in tb.rglob("events.out.tfevents.*") if p.resolve().is_relative_to(self.root))
            if tb.is_dir()
            else []
        )
        frames = [self._events(p) for p in files]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=["tag", "step", "value"])
        return pd.concat(frames, ignore_index=True).sort_values(["tag", "step"]).reset_index(drop=True)

    @_by_mtime
    def _events(self, path: Path) -> pd.DataFrame:
        import pandas as pd

        rows = []
        try:
            from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
            from tensorboard.util import tensor_util

            for event in EventFileLoader(str(path)).Load():
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        number = float(value.simple_value)
                    elif value.HasField("tensor"):
                        try:
                            number = float(tensor_util.make_ndarray(value.tensor).reshape(-1)[0])
                        except (ValueError, IndexError, TypeError):
                            continue
                    else:
                        continue
                    rows.append({"tag": value.tag, "step": int(event.step), "value": number})
        except ImportError:  # pragma: no cover - tensorboard comes with the rl extra
            pass
        except Exception:  # a truncated event file (a run still writing) reads as what it has so far
            pass
        return pd.DataFrame(rows, columns=["tag", "step", "value"])

    def training_info(self, run_id: str) -> dict[str, Any]:
        """A training run's ``train.json`` and ``best/best.json`` merged (missing files are skipped)."""
        info = dict(self._json(self.entry("runs", run_id, "train.json")))
        best = self._json(self.entry("runs", run_id, "best", "best.json"))
        info.update({f"best_{k}": v for k, v in best.items()})
        return info

    # --- datasets -----------------------------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        """Exported datasets with their manifests: ``[{"name", "manifest", "files", "size_mb"}]``."""
        out = []
        for folder in self._children("datasets"):
            manifest: dict[str, Any] = {}
            for name in ("manifest.json", "manifest.yaml", "manifest.yml"):
                path = folder / name
                if path.is_file():
                    manifest = self._json(path) if name.endswith(".json") else self._yaml(path)
                    break
            files = [p for p in folder.rglob("*") if p.is_file()]
            out.append(
                {
                    "name": folder.name,
                    "manifest": manifest,
                    "files": len(files),
                    "size_mb": round(sum(p.stat().st_size for p in files) / 1e6, 2),
                }
            )
        return out

    # --- twin store -----------------------------------------------------------------------------------

    def store_tables(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
        """The store's forecast and state tables (``None`` when missing) and a note on what is missing."""
        path = self.root / "roadtwin.duckdb"
        if not path.is_file():
            return None, None, "There is no twin store in this workspace yet (roadtwin.duckdb)."
        return self._store(path)

    def twin_forecasts(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
        """Forecasts of the preferred method (:data:`METHOD_ORDER`) and the state at their resolution.

        Both get local times (:data:`ZONE_TIMEZONE`): forecasts ``issued``, ``at`` (the end of the predicted
        interval); state ``at`` (the end of the estimated interval), so that the two line up. Returns
        ``(forecasts, state, method)``; ``None`` where the store lacks a table or rows.
        """
        import pandas as pd

        forecasts, state, _ = self.store_tables()
        if forecasts is None or forecasts.empty:
            return None, None, ""
        present = [str(m) for m in forecasts["method"].dropna().unique()]
        method = min(present, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER))
        f = forecasts[forecasts["method"] == method].sort_values(["issued_at", "horizon_min", "edge"])
        f["issued"] = pd.to_datetime(f["issued_at"], utc=True).dt.tz_convert(ZONE_TIMEZONE)
        f["at"] = pd.to_datetime(f["target_at"], utc=True).dt.tz_convert(ZONE_TIMEZONE)
        res = int(f["resolution_s"].mode().iloc[0]) if len(f) else 300
        st = None
        if state is not None and not state.empty:
            st = state[state["resolution_s"] == res].sort_values(["interval_start", "edge"])
            st["at"] = (
                pd.to_datetime(st["interval_start"], utc=True) + pd.Timedelta(seconds=res)
            ).dt.tz_convert(ZONE_TIMEZONE)
        return f, st, method

    def estimated_state(self, *, resolution_s: int = 300) -> pd.DataFrame | None:
        """The store's estimated state at ``resolution_s`` with ``tod_s``: local seconds of the day of each
        interval's start (the clock of a run's edge data); ``None`` without rows."""
        import pandas as pd

        _, state, _ = self.store_tables()
        if state is None or state.empty:
            return None
        st = state[state["resolution_s"] == resolution_s].copy()
        if st.empty:
            return None
        local = pd.to_datetime(st["interval_start"], utc=True).dt.tz_convert(ZONE_TIMEZONE)
        st["tod_s"] = (local.dt.hour * 3600 + local.dt.minute * 60 + local.dt.second).astype(float)
        return st

    def warm(self) -> None:
        """Read what the pages show first (newest run, its network and edge data, the store, newest
        evaluation and training run, datasets) into the caches, so that a first visit does not pay for it.

        Never raises: a file that cannot be read is the page's business when it is shown.
        """
        steps: list[Callable[[], object]] = [self.store_tables, self.estimated_state, self.twin_forecasts]
        runs = self.run_options()
        if runs:
            run_id = runs[0]["value"]
            steps += [lambda: self.intervals(run_id), lambda: self.junction_table(run_id)]
            net = self.network_file(run_id)
            if net is not None:
                steps.append(lambda: self.network(net))
        elif (default := self.default_network()) is not None:
            steps.append(lambda: self.network(default))
        evaluations = self.evaluations()
        if evaluations:
            steps.append(lambda: self.summary(evaluations[0]))
        trainings = self.runs(kind="training")
        if len(trainings):
            steps.append(lambda: self.learning_curves(str(trainings["id"].iloc[0])))
        steps.append(self.datasets)
        for step in steps:
            with contextlib.suppress(Exception):
                step()

    @_by_mtime
    def _store(self, path: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
        try:
            import duckdb
        except ImportError:  # pragma: no cover - duckdb comes with the twin extra
            return None, None, 'duckdb is not installed: pip install "roadtwin[twin]"'
        try:
            con = duckdb.connect(str(path), read_only=True)
        except Exception as exc:  # locked by a writer, or not a DuckDB file
            return None, None, f"The twin store could not be opened: {str(exc).splitlines()[0]}"
        try:
            tables = {
                r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
            }
            out: list[pd.DataFrame | None] = []
            missing = []
            for table, columns in ((FORECAST_TABLE, FORECAST_COLUMNS), (STATE_TABLE, STATE_COLUMNS)):
                if table not in tables:
                    out.append(None)
                    missing.append(table)
                    continue
                cols = ", ".join(f'"{c}"' for c in columns)
                try:
                    out.append(con.execute(f'SELECT {cols} FROM "{table}"').df())
                except Exception:
                    out.append(None)
                    missing.append(f"{table} (columns {', '.join(columns)})")
        finally:
            con.close()
        note = f"The twin store has no table {' or '.join(missing)} yet." if missing else ""
        return out[0], out[1], note


def clock(seconds: float) -> str:
    """``HH:MM`` of a time of day in seconds."""
    seconds = int(seconds) % 86400 if not math.isnan(seconds) else 0
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def congestion_class(ratio: float) -> int:
    """Index into :data:`CONGESTION_BINS` for a speed ratio; ``-1`` for no data."""
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return -1
    for i, (low, _, _) in enumerate(CONGESTION_BINS):
        if ratio >= low:
            return i
    return len(CONGESTION_BINS) - 1
