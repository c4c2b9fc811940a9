"""Simulated days of the zone for forecasting: day-to-day variation, a resumable cache, and loading.

Each day is a variant of a base scenario (demand level and peak shape, weather, an incident, AV share),
simulated without walkers (they cost wall time and no forecast target depends on them) and reduced to
per-edge, per-period tensors: vehicles entering the edge, vehicle-seconds and metres driven on it (speed
is metres / vehicle-seconds). A cache folder holds ``day_0000.npz`` per day (written atomically; its
presence marks the day done), ``day_0000.json`` with the day's scenario, and ``manifest.json`` with the
edges, their free-flow speeds and adjacency and the list of days. Day ``i`` of a given ``seed`` is always
the same scenario, so asking for more days later only adds the new ones; a kill loses at most the days in
progress.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roadtwin._io import atomic_path, write_json
from roadtwin.errors import ConfigError
from roadtwin.sim.scenario import Scenario, format_time, parse_time
from roadtwin.workspace import Workspace

__all__ = [
    "WEATHERS",
    "DaySet",
    "DayVariation",
    "arterial_edges",
    "day_scenario",
    "days_folder",
    "generate_days",
    "generate_replicas",
    "load_days",
    "load_replicas",
]

#: Weather conditions, in the order of the one-hot flags the forecaster sees.
WEATHERS = ("clear", "rain", "snow", "fog")

#: Version of the cache layout; a folder of another version is refused rather than misread.
CACHE_VERSION = 1


@dataclass(frozen=True)
class DayVariation:
    """How one simulated day differs from the base scenario.

    Attributes
    ----------
    demand_sd
        Standard deviation of the day's demand level (a factor drawn from N(1, sd), clipped to 0.6-1.5).
    peak_shift_min
        The profile shifts by a uniform draw in +-this many minutes.
    peak_sharpness
        Range of a factor that stretches the profile's deviations from 1 (a sharper or flatter peak).
    weather
        Probability of each condition in :data:`WEATHERS`; rain and snow draw an intensity uniformly.
    incident_probability
        Probability of one incident on a random arterial edge (15-45 min, one lane to the whole road).
    av_share
        Range of the automated-vehicle share (taken from the cars' share).
    """

    demand_sd: float = 0.12
    peak_shift_min: float = 15.0
    peak_sharpness: tuple[float, float] = (0.7, 1.3)
    weather: tuple[float, float, float, float] = (0.6, 0.2, 0.1, 0.1)
    incident_probability: float = 0.35
    av_share: tuple[float, float] = (0.0, 0.4)


@dataclass(frozen=True)
class DaySet:
    """Cached days loaded as arrays (``D`` days, ``T`` periods, ``N`` edges).

    Attributes
    ----------
    edges
        Edge ids, length ``N``.
    edge_from, edge_to
        Junction ids of each edge (the line graph's adjacency: ``i -> j`` when ``to[i] == from[j]``).
    free_speed
        Speed limit of each edge in m/s.
    count
        Vehicles entering each edge per period, ``(D, T, N)``.
    sampled_s
        Vehicle-seconds spent on each edge per period, ``(D, T, N)``.
    distance_m
        Metres driven on each edge per period, ``(D, T, N)``.
    begin_s
        Simulation time of the first period's start (s since midnight).
    period_s
        Length of a period in s.
    weather
        Index into :data:`WEATHERS` per day, ``(D,)``.
    days
        Day indices as cached (``day_0007`` is 7).
    meta
        Each day's description (demand factor, shift, weather, incident, AV share, scenario).
    """

    edges: list[str]
    edge_from: list[str]
    edge_to: list[str]
    free_speed: np.ndarray
    count: np.ndarray
    sampled_s: np.ndarray
    distance_m: np.ndarray
    begin_s: float
    period_s: float
    weather: np.ndarray
    days: list[int]
    meta: list[dict[str, Any]] = field(default_factory=list)


def days_folder(*, workspace: Workspace, base_scenario: Scenario, seed: int, window: tuple[str, str]) -> Path:
    """Return the cache folder of the days of ``base_scenario`` with ``seed`` over ``window``."""
    begin, end = (format_time(parse_time(w)).replace(":", "")[:4] for w in window)
    return workspace.root / "forecast" / "days" / f"{base_scenario.name}__{seed}__{begin}-{end}"


def arterial_edges(edges: Any, lanes: Any) -> dict[str, list[int]]:
    """Return the arterial edges (highest priorities, 2+ vehicle lanes) with their vehicle lane indices.

    Parameters
    ----------
    edges, lanes
        The ``edges`` and ``lanes`` frames of :func:`roadtwin.maps.network.network_frames`.
    """
    vehicle = lanes[lanes["allow"].fillna("") != "pedestrian"]
    by_edge = vehicle.groupby("edge")["index"].apply(lambda s: sorted(int(i) for i in s)).to_dict()
    cut = edges["priority"].quantile(0.5)
    out = {}
    for row in edges.itertuples():
        idx = by_edge.get(row.id, [])
        if row.priority >= cut and len(idx) >= 2 and row.length >= 150:
            out[str(row.id)] = idx
    return out


def day_scenario(
    base: Scenario,
    *,
    index: int,
    seed: int,
    window: tuple[str, str],
    arterials: dict[str, list[int]],
    variation: DayVariation = DayVariation(),
) -> tuple[Scenario, dict[str, Any]]:
    """Return day ``index``'s scenario (a variant of ``base``) and a short description of it.

    The draw depends only on ``(seed, index)``, so a day is the same whenever it is generated.
    """
    rng = np.random.default_rng([seed, index])
    begin_s, end_s = parse_time(window[0]), parse_time(window[1])
    level = float(np.clip(rng.normal(1.0, variation.demand_sd), 0.6, 1.5))
    shift = float(round(rng.uniform(-variation.peak_shift_min, variation.peak_shift_min) * 60))
    sharp = float(rng.uniform(*variation.peak_sharpness))
    profile = [
        {"at": format_time(p.at + shift), "factor": round(max(0.05, 1 + (p.factor - 1) * sharp), 4)}
        for p in base.demand.profile
    ]
    condition = WEATHERS[
        int(rng.choice(len(WEATHERS), p=np.asarray(variation.weather) / sum(variation.weather)))
    ]
    intensity = str(rng.choice(["light", "moderate", "heavy"])) if condition in ("rain", "snow") else None
    av = float(rng.uniform(*variation.av_share))
    mix = base.vehicle_mix.model_dump(mode="json")
    mix["car"] = round(max(0.0, mix["car"] + mix["av"] - av), 4)
    mix["av"] = round(av, 4)
    incidents: list[dict[str, Any]] = []
    draw_incident = rng.uniform() < variation.incident_probability
    if draw_incident and arterials:
        edge = sorted(arterials)[int(rng.integers(len(arterials)))]
        vehicle_lanes = arterials[edge]
        span = end_s - begin_s
        lo, hi = (
            begin_s + min(1800, span / 4),
            max(begin_s + min(1800, span / 4), end_s - min(3600, span / 2)),
        )
        start = float(rng.uniform(lo, hi))
        duration = min(float(rng.uniform(900, 2700)), end_s - start - 1)
        kind = rng.uniform()
        lanes: list[int] | str = (
            "all"
            if kind < 0.2
            else vehicle_lanes[:1]
            if kind < 0.6
            else vehicle_lanes[: min(2, len(vehicle_lanes) - 1)]
        )
        incidents.append(
            {"edge": edge, "lanes": lanes, "begin": format_time(start), "end": format_time(start + duration),
             "description": "forecast training day"}
        )  # fmt: skip
    assert base.demand.veh_per_hour is not None or base.demand.total_vehicles is not None
    demand = base.demand.model_dump(mode="json")
    if demand.get("veh_per_hour") is not None:
        demand["veh_per_hour"] = round(demand["veh_per_hour"] * level, 1)
    else:
        demand["total_vehicles"] = round(demand["total_vehicles"] * level)
    demand["profile"] = profile
    data = {
        **base.model_dump(mode="json"),
        "name": f"{base.name}__day{index:04d}",
        "begin": window[0],
        "end": window[1],
        "seed": (seed * 100_003 + index) % 2**31,
        "demand": demand,
        "vehicle_mix": mix,
        "weather": {"condition": condition, "intensity": intensity},
        "incidents": incidents,
        "pedestrians": {"per_hour": 0},
    }
    scenario = Scenario.model_validate(data)
    meta = {
        "day": index,
        "demand_factor": round(level, 4),
        "peak_shift_min": round(shift / 60, 2),
        "peak_sharpness": round(sharp, 3),
        "weather": condition,
        "intensity": intensity,
        "av_share": round(av, 4),
        "incident": incidents[0] if incidents else None,
    }
    return scenario, meta


def _read_meandata(
    path: Path, edges: Sequence[str], *, begin_s: float, period_s: float, n: int
) -> dict[str, np.ndarray]:
    from lxml import etree

    col = {e: i for i, e in enumerate(edges)}
    out = {k: np.zeros((n, len(edges)), dtype=np.float32) for k in ("count", "sampled_s", "distance_m")}
    for _, interval in etree.iterparse(str(path), events=("end",), tag="interval"):
        t = round((float(interval.get("begin", 0)) - begin_s) / period_s)
        if 0 <= t < n:
            for e in interval:
                j = col.get(e.get("id"))
                if j is None:
                    continue
                out["count"][t, j] = float(e.get("entered", 0)) + float(e.get("departed", 0))
                out["sampled_s"][t, j] = float(e.get("sampledSeconds", 0))
                out["distance_m"][t, j] = float(e.get("distance", 0))
        interval.clear()
    return out


def _simulate_day(task: dict[str, Any]) -> dict[str, Any]:
    """Simulate one day and write its ``.npz`` (a worker's job; also called in-process)."""
    import sumo  # noqa: F401  # sets SUMO_HOME before libsumo

    from roadtwin.sim.inputs import prepare_inputs
    from roadtwin.sim.run import simulate

    folder = Path(task["folder"])
    scenario = Scenario.model_validate(task["scenario"])
    work = folder / "tmp" / f"day_{task['day']:04d}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    inputs = prepare_inputs(scenario, net_file=task["net_file"], out_dir=work / "inputs")
    add = work / "forecast.add.xml"
    add.write_text(
        f'<additional>\n    <edgeData id="forecast" period="{task["period_s"]:g}" file="forecast.edges.xml" '
        f'excludeEmpty="false"/>\n</additional>\n',
        encoding="utf-8",
    )
    extra = ("--mesosim", "true", "--meso-junction-control", "true") if task["mesoscopic"] else ()
    inputs = dataclasses.replace(
        inputs, additional_files=(*inputs.additional_files, add), extra_args=(*inputs.extra_args, *extra)
    )
    simulate(inputs, out_dir=work, progress=False)
    n = round((inputs.end - inputs.begin) / task["period_s"])
    arrays = _read_meandata(
        work / "forecast.edges.xml", task["edges"], begin_s=inputs.begin, period_s=task["period_s"], n=n
    )
    meta = {**task["meta"], "n_vehicles": inputs.n_vehicles, "wall_s": round(time.perf_counter() - t0, 1)}
    name = f"day_{task['day']:04d}"
    write_json(folder / f"{name}.json", {**meta, "scenario": task["scenario"]})
    with atomic_path(folder / f"{name}.npz") as tmp, open(tmp, "wb") as fh:
        payload: dict[str, Any] = {
            **arrays, "begin_s": np.float64(inputs.begin), "period_s": np.float64(task["period_s"]),
            "weather": np.int64(WEATHERS.index(meta["weather"])),
        }  # fmt: skip
        np.savez_compressed(fh, **payload)
    shutil.rmtree(work, ignore_errors=True)
    return meta


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not path.exists():
        raise ConfigError(
            path=folder,
            field=None,
            expected="a days folder with manifest.json (roadtwin twin forecast generate)",
        )
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _write_manifest(folder: Path, header: dict[str, Any]) -> None:
    days = []
    for npz in sorted(folder.glob("day_[0-9][0-9][0-9][0-9].npz")):
        meta_path = npz.with_suffix(".json")
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        meta.pop("scenario", None)
        days.append({"file": npz.name, **meta})
    write_json(folder / "manifest.json", {**header, "days": days})


def generate_days(
    *,
    n_days: int,
    workspace: Workspace,
    base_scenario: Scenario | None = None,
    seed: int = 0,
    window: tuple[str, str] = ("06:30", "09:30"),
    period_s: float = 60.0,
    variation: DayVariation = DayVariation(),
    mesoscopic: bool = True,
    workers: int = 1,
    folder: Path | None = None,
    progress: bool | Callable[[int, int], None] = True,
) -> Path:
    """Simulate days ``0 .. n_days-1`` of the zone into a cache folder, skipping the ones already there.

    Parameters
    ----------
    n_days
        Number of days the folder holds afterwards.
    workspace
        Where the network is built and, unless ``folder`` is given, the cache lives
        (``forecast/days/{scenario}__{seed}__{begin}-{end}/``).
    base_scenario
        The scenario the days vary (default: the built-in morning peak).
    seed
        Seed of the days' draws; day ``i`` depends only on ``(seed, i)``.
    window
        Simulated time of day, ``("HH:MM", "HH:MM")``; the network starts empty, so leave a warm-up.
    period_s
        Aggregation period of the per-edge tensors.
    variation
        The day-to-day variation.
    mesoscopic
        Simulate with SUMO's mesoscopic model (queues per edge, signals respected): about 25x cheaper than
        the microscopic model (3.5 s against 87 s of CPU for a 3-hour peak of the zone), which makes
        many days affordable; car-following (and so the AVs' CACC) is not modelled, their share still
        changes the vehicle types' speed factors.
    workers
        Forked processes simulating in parallel (libsumo runs one simulation per process); 1 runs here.
    folder
        Cache folder (overrides the default under ``workspace``).
    progress
        Show a progress bar, nothing, or call ``f(done, n_days)``.

    Returns
    -------
    Path
        The cache folder.

    Raises
    ------
    ConfigError
        The folder holds days generated with another window, period, variation or base scenario.
    """
    from roadtwin.maps.network import network_frames
    from roadtwin.sim.run import resolve_network
    from roadtwin.sim.scenario import builtin_scenario, load_scenario

    base = base_scenario if base_scenario is not None else load_scenario(builtin_scenario())
    folder = (
        folder
        if folder is not None
        else days_folder(workspace=workspace, base_scenario=base, seed=seed, window=window)
    )
    folder.mkdir(parents=True, exist_ok=True)
    net_file = resolve_network(base, workspace=workspace)
    frames = network_frames(net_file)
    vehicle_edges = set(frames.lanes.loc[frames.lanes["allow"].fillna("") != "pedestrian", "edge"])
    edges = frames.edges[frames.edges["id"].isin(vehicle_edges)].sort_values("id").reset_index(drop=True)
    header = {
        "version": CACHE_VERSION,
        "base_scenario": base.model_dump(mode="json"),
        "seed": seed,
        "window": list(window),
        "period_s": period_s,
        "variation": dataclasses.asdict(variation),
        "mesoscopic": mesoscopic,
        "edges": edges["id"].astype(str).tolist(),
        "edge_from": edges["from"].astype(str).tolist(),
        "edge_to": edges["to"].astype(str).tolist(),
        "free_speed": [round(float(s), 3) for s in edges["speed"]],
    }
    manifest = folder / "manifest.json"
    if manifest.exists():
        old = json.loads(manifest.read_text(encoding="utf-8"))
        old_header = {k: old.get(k) for k in header}
        if json.loads(json.dumps(old_header)) != json.loads(json.dumps(header)):
            differ = [k for k in header if json.dumps(old_header[k]) != json.dumps(header[k])]
            raise ConfigError(
                path=folder,
                field=", ".join(differ),
                expected="the settings its days were made with (or another folder)",
            )
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    _write_manifest(folder, header)
    arterials = arterial_edges(edges, frames.lanes)
    todo = []
    for i in range(n_days):
        if (folder / f"day_{i:04d}.npz").exists():
            continue
        scenario, meta = day_scenario(
            base, index=i, seed=seed, window=window, arterials=arterials, variation=variation
        )
        todo.append(
            {"day": i, "folder": str(folder), "scenario": scenario.model_dump(mode="json"), "meta": meta,
             "net_file": str(net_file), "period_s": period_s, "edges": header["edges"], "mesoscopic": mesoscopic}
        )  # fmt: skip
    done = n_days - len(todo)
    bar, task_id = None, None
    if progress is True:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]simulating days"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(),
        )  # fmt: skip
        task_id = bar.add_task("days", total=n_days, completed=done)
        bar.start()

    def advance() -> None:
        nonlocal done
        done += 1
        _write_manifest(folder, header)
        if bar is not None:
            bar.update(task_id, completed=done)  # type: ignore[arg-type]
        elif callable(progress):
            progress(done, n_days)

    try:
        _run_tasks(todo, workers=workers, advance=advance)
    finally:
        if bar is not None:
            bar.stop()
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    return folder


#: Replica ``k`` of a day runs with the day's seed + this x (k + 1): another day's seed only in a cache of
#: more days than this.
_REPLICA_SEED_STEP = 7919


def _replica_folder(folder: Path, replica: int) -> Path:
    return Path(folder) / "replicas" / f"r{replica}"


def _run_tasks(todo: list[dict[str, Any]], *, workers: int, advance: Callable[[], None]) -> None:
    """Simulate ``todo`` (``_simulate_day`` tasks) here or in ``workers`` forked processes."""
    if workers <= 1 or len(todo) <= 1:
        for task in todo:
            _simulate_day(task)
            advance()
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        for fut in as_completed([pool.submit(_simulate_day, task) for task in todo]):
            fut.result()
            advance()


def generate_replicas(
    *,
    folder: Path,
    days: Sequence[int],
    replicas: int,
    workspace: Workspace,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Simulate ``days`` of a days cache again, ``replicas`` times each, with other random seeds.

    A replica has every condition of its day (demand level and shape, weather, incident, AV share) and
    draws only its trips and SUMO's randomness anew, so the spread between a day and its replicas is the
    day's noise: what no forecaster can predict, however much it knows about the day. Replicas go to
    ``folder/replicas/r{k}/day_NNNN.npz`` (the day's own layout); those already there are skipped, so a
    kill loses only the ones in progress.

    Parameters
    ----------
    folder
        A :func:`generate_days` folder.
    days
        Day indices to replicate (finished days of ``folder``).
    replicas
        Replicas per day.
    workspace
        Where the zone's network is built (or found).
    workers
        Forked processes simulating in parallel; 1 runs here.
    progress
        Called with ``(done, total)`` after each replica.

    Returns
    -------
    Path
        ``folder/replicas``.

    Raises
    ------
    ConfigError
        ``folder`` is not a days folder or lacks a requested day.
    """
    from roadtwin.sim.run import resolve_network

    folder = Path(folder)
    manifest = _read_manifest(folder)
    missing = [d for d in days if not (folder / f"day_{d:04d}.json").exists()]
    if missing:
        raise ConfigError(path=folder, field="days", expected="generated days", got=missing)
    net_file = resolve_network(Scenario.model_validate(manifest["base_scenario"]), workspace=workspace)
    todo = []
    for k in range(replicas):
        out = _replica_folder(folder, k)
        out.mkdir(parents=True, exist_ok=True)
        for d in days:
            if (out / f"day_{d:04d}.npz").exists():
                continue
            meta = json.loads((folder / f"day_{d:04d}.json").read_text(encoding="utf-8"))
            scenario = meta.pop("scenario")
            scenario["seed"] = (int(scenario["seed"]) + _REPLICA_SEED_STEP * (k + 1)) % 2**31
            meta = {key: meta[key] for key in meta if key not in ("n_vehicles", "wall_s")}
            todo.append(
                {"day": d, "folder": str(out), "scenario": scenario, "meta": {**meta, "replica": k},
                 "net_file": str(net_file), "period_s": manifest["period_s"], "edges": manifest["edges"],
                 "mesoscopic": manifest["mesoscopic"]}
            )  # fmt: skip
    total, done = replicas * len(days), replicas * len(days) - len(todo)

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    _run_tasks(todo, workers=workers, advance=advance)
    for k in range(replicas):
        shutil.rmtree(_replica_folder(folder, k) / "tmp", ignore_errors=True)
    return folder / "replicas"


def load_replicas(folder: Path, *, days: Sequence[int], replicas: int) -> list[DaySet]:
    """Load the replicas of ``days`` (from :func:`generate_replicas`): one :class:`DaySet` per replica.

    Raises
    ------
    ConfigError
        A replica of a requested day is missing.
    """
    base = load_days(folder, days=days)
    out = []
    for k in range(replicas):
        paths = [_replica_folder(folder, k) / f"day_{d:04d}.npz" for d in days]
        missing = [p.name for p in paths if not p.exists()]
        if missing:
            raise ConfigError(
                path=_replica_folder(folder, k), field="days", expected="replicated days", got=missing
            )
        loaded = [np.load(p) for p in paths]
        n = base.count.shape[1]
        arrays = {key: np.stack([x[key][:n] for x in loaded]) for key in ("count", "sampled_s", "distance_m")}
        out.append(dataclasses.replace(base, **arrays))
    return out


def load_days(folder: Path, *, days: Sequence[int] | None = None) -> DaySet:
    """Load cached days (all finished ones, or ``days``) from a :func:`generate_days` folder.

    Raises
    ------
    ConfigError
        The folder has no manifest, no finished day, or lacks a requested day.
    """
    manifest = _read_manifest(Path(folder))
    available = sorted(int(p.stem.split("_")[1]) for p in Path(folder).glob("day_[0-9][0-9][0-9][0-9].npz"))
    wanted = list(days) if days is not None else available
    missing = sorted(set(wanted) - set(available))
    if missing or not wanted:
        raise ConfigError(path=folder, field="days", expected="generated days", got=missing or "none")
    loaded = [np.load(Path(folder) / f"day_{i:04d}.npz") for i in wanted]
    metas = []
    for i in wanted:
        p = Path(folder) / f"day_{i:04d}.json"
        metas.append(json.loads(p.read_text(encoding="utf-8")) if p.exists() else {"day": i})
    n = min(d["count"].shape[0] for d in loaded)
    return DaySet(
        edges=manifest["edges"],
        edge_from=manifest["edge_from"],
        edge_to=manifest["edge_to"],
        free_speed=np.asarray(manifest["free_speed"], dtype=np.float32),
        count=np.stack([d["count"][:n] for d in loaded]),
        sampled_s=np.stack([d["sampled_s"][:n] for d in loaded]),
        distance_m=np.stack([d["distance_m"][:n] for d in loaded]),
        begin_s=float(loaded[0]["begin_s"]),
        period_s=float(loaded[0]["period_s"]),
        weather=np.asarray([int(d["weather"]) for d in loaded]),
        days=wanted,
        meta=metas,
    )
