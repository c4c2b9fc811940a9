"""The scenario factory: many variants of one scenario, simulated on Ray and exported as datasets.

Variant ``i`` of a factory is a deterministic function of ``(seed, i)``: its weather preset, demand level
and time-of-day shape, automated-vehicle share and an incident (some lanes of a main road blocked for a
while) are drawn from ``numpy.random.default_rng([seed, i])``, and only the dimensions named in ``vary``
are applied (the others keep the base scenario's values; the traffic seed always changes). Each variant
gets a stable id ``{i:04d}-{hash}`` (the hash of its scenario) and its dataset goes to ``OUT/<id>/``;
a variant is done when ``OUT/<id>/manifest.json`` exists (the exporter writes it last), so running the
factory again only runs what is missing.

Each variant is one Ray task in a fresh worker process (``max_calls=1``): libsumo runs one simulation per
process and a worker never runs two tasks at once, so a task owns its process's libsumo; the fresh
process also means a simulation that crashed or leaked cannot touch the next one. A failed task is
retried (``max_retries``) and, if it keeps failing, reported while the others finish.

Files in ``OUT``: ``variants.csv`` (the plan, written before anything runs), ``report.json`` and
``report.csv`` (per variant: parameters, status, attempts, error, wall time, split). With
``ray_address`` the tasks run on a cluster; ``OUT`` and the workspace must then be on a file system
every node shares, and every node needs RoadTwin installed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BeforeValidator, Field, ValidationError, field_validator

from roadtwin._io import atomic_path, write_json
from roadtwin.config import StrictModel, validation_error
from roadtwin.errors import ConfigError, ScenarioError, require
from roadtwin.sim.scenario import Scenario, format_time, parse_time
from roadtwin.workspace import DEFAULT_WORKSPACE, Workspace

__all__ = [
    "DEFAULT_SCENARIO",
    "VARY",
    "FactoryOptions",
    "FactoryReport",
    "Variant",
    "VariantResult",
    "generate",
    "generate_command",
    "main_edges",
    "plan_variants",
    "variant_scenario",
]

Dimension = Literal["weather", "demand", "av_share", "incidents"]

#: The dimensions a factory can vary.
VARY: tuple[Dimension, ...] = ("weather", "demand", "av_share", "incidents")

#: The scenario varied when none is given.
DEFAULT_SCENARIO = "yizhuang_morning_peak"

#: The exporter each task calls: ``export_run(run_dir, out=..., overwrite=..., progress=...)``.
DEFAULT_EXPORTER = "roadtwin.datasets.export:export_run"

#: What each run records for its dataset (``run_scenario(record=...)``).
RECORD = ("fcd", "signals")

_WEATHERS = ("clear", "rain", "snow", "fog")
_INTENSITIES = ("light", "moderate", "heavy")
#: Ranges of the draws (one place, so that the plan in the docs and in the code agree).
_DEMAND_SCALE = (0.7, 1.3)
_PEAK_SHIFT_MIN = 20.0
_PEAK_SHARPNESS = (0.6, 1.4)
_FLAT_TILT = 0.3
_AV_SHARE = (0.0, 0.5)
_INCIDENT_PROBABILITY = 0.6
_MAIN_EDGE_MIN_LENGTH_M = 100.0


def _split_vary(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none"):
            return []
        if text == "all":
            return list(VARY)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _optional_time(value: Any) -> Any:
    return None if value is None else parse_time(value)


OptionalTime = Annotated[float | None, BeforeValidator(_optional_time)]


class FactoryOptions(StrictModel):
    """Options of ``roadtwin datasets generate`` (also settable in a ``--config`` YAML file)."""

    scenario: str = DEFAULT_SCENARIO
    """A built-in scenario name or the path of a scenario YAML file."""
    count: int = Field(10, ge=1)
    """Number of variants (``0 .. count-1``); asking for more later only adds the new ones."""
    vary: Annotated[list[Dimension], BeforeValidator(_split_vary)] = Field(default_factory=lambda: list(VARY))
    """Dimensions varied (a list or ``"weather,demand"``; ``none`` varies only the traffic seed)."""
    seed: int = Field(0, ge=0)
    """Seed of the variants' draws: variant ``i`` depends only on ``(seed, i)``."""
    begin: OptionalTime = None
    """Start of the simulated window (``HH:MM[:SS]`` or seconds; default: the scenario's)."""
    end: OptionalTime = None
    """End of the window (default: the scenario's, or ``begin + duration``)."""
    duration: OptionalTime = None
    """Length of the window (seconds or ``HH:MM[:SS]``) instead of ``end``, for short runs."""
    out: Path | None = None
    """Output folder (default ``WORKSPACE/datasets/factory-{scenario}__{seed}``)."""
    ray_address: str | None = None
    """Address of a Ray cluster (``ray://host:10001`` or ``auto``); default: a local Ray started here."""
    num_cpus: int | None = Field(None, ge=1)
    """CPUs of the local Ray (default: all); one variant runs per CPU."""
    max_retries: int = Field(2, ge=0)
    """Retries of a failed variant before it is reported as failed."""
    keep_runs: bool = False
    """Keep each variant's run folder (``WORKSPACE/runs/``) after its export."""
    workspace: Path = DEFAULT_WORKSPACE
    """Workspace folder (the network is built there once; runs are written there)."""
    progress: bool = True
    """Show a progress bar."""

    @field_validator("vary")
    @classmethod
    def _distinct(cls, vary: list[Dimension]) -> list[Dimension]:
        return [d for d in VARY if d in vary]


@dataclass(frozen=True)
class Variant:
    """One planned variant: its index, stable id, scenario and the parameters drawn for it."""

    index: int
    id: str
    scenario: Scenario
    params: dict[str, Any]


@dataclass(frozen=True)
class VariantResult:
    """What became of one variant.

    Attributes
    ----------
    status
        ``"ok"`` (run and exported now), ``"skipped"`` (done before) or ``"failed"``.
    attempts
        Attempts made in this call (0 when skipped).
    error
        The last attempt's error, ``type: message``; empty unless failed.
    wall_s
        Wall time of the successful attempt (s), simulation and export.
    split
        The dataset's split as its manifest gives it (``None`` when failed or not given).
    """

    variant: Variant
    status: Literal["ok", "skipped", "failed"]
    attempts: int = 0
    error: str = ""
    wall_s: float | None = None
    sim_wall_s: float | None = None
    split: str | None = None
    dataset: Path | None = None

    def row(self) -> dict[str, Any]:
        """Return a flat row for ``report.csv``."""
        return {
            "index": self.variant.index,
            "variant": self.variant.id,
            "status": self.status,
            "attempts": self.attempts,
            "wall_s": self.wall_s,
            "sim_wall_s": self.sim_wall_s,
            "split": self.split,
            "error": self.error,
            **self.variant.params,
        }


@dataclass(frozen=True)
class FactoryReport:
    """The outcome of :func:`generate`."""

    out: Path
    results: list[VariantResult]
    wall_s: float
    ray_s: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        """Return the number of variants with ``status``."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[VariantResult]:
        """The variants that failed after their retries."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """Whether every variant has a dataset."""
        return not self.failed

    def summary(self) -> str:
        """Return one line: how many were generated, skipped and failed, and where."""
        splits = ", ".join(f"{k} {v}" for k, v in sorted(self.splits.items()))
        return (
            f"{self.count('ok')} generated, {self.count('skipped')} already done, {self.count('failed')} failed "
            f"of {len(self.results)} variants in {self.wall_s:.1f} s"
            + (f" (splits: {splits})" if splits else "")
            + f" -> {self.out}"
        )


# --- the plan ------------------------------------------------------------------------------------------


def main_edges(net_file: str | os.PathLike[str]) -> dict[str, tuple[list[int], float]]:
    """Return the main roads of a network: ``{edge: (vehicle lane indices, length)}``.

    Main roads have two or more lanes for cars, are at least 100 m long (room for a blockage 50 m
    short of the stop line) and have a priority in the network's upper half.
    """
    from roadtwin.maps.network import load_net

    candidates = []
    for edge in load_net(net_file).getEdges():
        if edge.getFunction() == "internal":
            continue
        lanes = [lane.getIndex() for lane in edge.getLanes() if lane.allows("passenger")]
        if len(lanes) >= 2 and edge.getLength() >= _MAIN_EDGE_MIN_LENGTH_M:
            candidates.append((edge.getID(), sorted(lanes), edge.getLength(), edge.getPriority()))
    if not candidates:
        return {}
    priorities = sorted(c[3] for c in candidates)
    median = priorities[len(priorities) // 2]
    return {eid: (lanes, length) for eid, lanes, length, prio in sorted(candidates) if prio >= median}


def _shaped_profile(
    base: Scenario, *, begin: float, end: float, shift_s: float, sharpness: float, tilt: float
) -> list[dict[str, Any]]:
    """The base profile moved by ``shift_s`` and its swings around 1 stretched by ``sharpness``.

    A flat base (no profile) gets a linear tilt across the window instead (``1 -/+ tilt``).
    """
    if not base.demand.profile:
        return [
            {"at": format_time(begin), "factor": round(1 - tilt, 4)},
            {"at": format_time(end), "factor": round(1 + tilt, 4)},
        ]
    return [
        {
            "at": format_time(max(0.0, p.at + shift_s)),
            "factor": round(max(0.05, 1 + (p.factor - 1) * sharpness), 4),
        }
        for p in base.demand.profile
    ]


def variant_scenario(
    base: Scenario,
    *,
    index: int,
    seed: int,
    vary: Sequence[str] = VARY,
    begin: float | None = None,
    end: float | None = None,
    edges: Mapping[str, tuple[list[int], float]] | None = None,
) -> tuple[Scenario, dict[str, Any]]:
    """Return variant ``index`` of ``base`` and the parameters drawn for it.

    Every dimension is drawn, in a fixed order, whether or not it is varied, so variant ``i`` has the
    same weather whatever else varies; only the dimensions in ``vary`` are applied.

    Parameters
    ----------
    base
        The scenario varied.
    index, seed
        The variant depends only on these two.
    vary
        Dimensions applied (:data:`VARY`).
    begin, end
        The simulated window in s (default: the base's).
    edges
        Roads an incident may block (:func:`main_edges`); none means no incident.

    Raises
    ------
    ScenarioError
        The variant is not a valid scenario (e.g. a base incident outside a shortened window).
    """
    import numpy as np

    rng = np.random.default_rng([seed, index])
    b = base.begin if begin is None else begin
    e = base.end if end is None else end
    span = e - b
    traffic_seed = int(rng.integers(0, 2**31 - 1))
    # Weather.
    condition = _WEATHERS[int(rng.integers(len(_WEATHERS)))]
    intensity_draw = _INTENSITIES[int(rng.integers(len(_INTENSITIES)))]
    intensity = intensity_draw if condition in ("rain", "snow") else None
    # Demand level and shape.
    scale = float(rng.uniform(*_DEMAND_SCALE))
    shift_s = float(round(rng.uniform(-_PEAK_SHIFT_MIN, _PEAK_SHIFT_MIN) * 60))
    sharpness = float(rng.uniform(*_PEAK_SHARPNESS))
    tilt = float(rng.uniform(-_FLAT_TILT, _FLAT_TILT))
    # Automated-vehicle share.
    av = float(rng.uniform(*_AV_SHARE))
    # Incident.
    has_incident = bool(rng.uniform() < _INCIDENT_PROBABILITY)
    edge_draw, width_draw, lane_draw = float(rng.uniform()), float(rng.uniform()), float(rng.uniform())
    start_frac, length_frac = float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.25, 0.5))

    data = base.model_dump(mode="json")
    data.update(name=f"{base.name}__v{index:04d}", begin=b, end=e, seed=traffic_seed)
    params: dict[str, Any] = {"seed": traffic_seed}
    if "weather" in vary:
        data["weather"] = {"condition": condition, "intensity": intensity}
    params["weather"] = data["weather"]["condition"]
    params["intensity"] = data["weather"]["intensity"]
    if "demand" in vary:
        demand = dict(data["demand"])
        if demand.get("veh_per_hour") is not None:
            demand["veh_per_hour"] = round(demand["veh_per_hour"] * scale, 1)
        else:
            demand["total_vehicles"] = round(demand["total_vehicles"] * scale)
        demand["profile"] = _shaped_profile(
            base, begin=b, end=e, shift_s=shift_s, sharpness=sharpness, tilt=tilt
        )
        data["demand"] = demand
        params |= {
            "demand_scale": round(scale, 4),
            "peak_shift_min": round(shift_s / 60, 2),
            "peak_sharpness": round(sharpness, 4) if base.demand.profile else None,
            "tilt": round(tilt, 4) if not base.demand.profile else None,
        }
    else:
        params |= {"demand_scale": 1.0, "peak_shift_min": 0.0, "peak_sharpness": None, "tilt": None}
    if "av_share" in vary:
        mix = dict(data["vehicle_mix"])
        others = mix["bus"] + mix["truck"]
        av = min(av, 1.0 - others)
        mix["av"] = round(av, 4)
        mix["car"] = round(1.0 - others - mix["av"], 6)
        data["vehicle_mix"] = mix
    params["av_share"] = data["vehicle_mix"]["av"]
    if "incidents" in vary:
        incidents = []
        if has_incident and edges:
            edge_id = sorted(edges)[min(int(edge_draw * len(edges)), len(edges) - 1)]
            lanes, _ = edges[edge_id]
            width = 2 if width_draw < 0.3 and len(lanes) > 2 else 1
            first = min(int(lane_draw * (len(lanes) - width + 1)), len(lanes) - width)
            t1 = float(round(b + start_frac * span))
            t2 = float(min(e, round(t1 + max(1.0, length_frac * span))))
            if b <= t1 < t2 <= e:
                incidents.append(
                    {"edge": edge_id, "lanes": lanes[first : first + width], "begin": t1, "end": t2,
                     "description": f"factory variant {index}: lanes blocked"}
                )  # fmt: skip
        data["incidents"] = incidents
    else:
        # A shortened window keeps the base incidents that fall inside it, cut at its end.
        data["incidents"] = [
            {**inc, "end": min(parse_time(inc["end"]), e)}
            for inc in data["incidents"]
            if b <= parse_time(inc["begin"]) < e
        ]
    inc = data["incidents"][0] if data["incidents"] else None
    params |= {
        "incident_edge": inc["edge"] if inc else None,
        "incident_lanes": (
            (inc["lanes"] if isinstance(inc["lanes"], str) else " ".join(str(x) for x in inc["lanes"]))
            if inc
            else None
        ),
        "incident_begin": format_time(parse_time(inc["begin"])) if inc else None,
        "incident_end": format_time(parse_time(inc["end"])) if inc else None,
    }
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path=base.source, error=ScenarioError) from None
    return scenario, params


def _variant_id(index: int, scenario: Scenario) -> str:
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return f"{index:04d}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def plan_variants(
    base: Scenario,
    *,
    count: int,
    seed: int,
    vary: Sequence[str] = VARY,
    begin: float | None = None,
    end: float | None = None,
    edges: Mapping[str, tuple[list[int], float]] | None = None,
) -> list[Variant]:
    """Return variants ``0 .. count-1`` of ``base`` (see :func:`variant_scenario`)."""
    variants = []
    for i in range(count):
        scenario, params = variant_scenario(
            base, index=i, seed=seed, vary=vary, begin=begin, end=end, edges=edges
        )
        variants.append(Variant(index=i, id=_variant_id(i, scenario), scenario=scenario, params=params))
    return variants


def _load_base(spec: str) -> Scenario:
    from roadtwin.sim.scenario import builtin_scenario, load_scenario

    path = Path(spec)
    if spec.endswith((".yaml", ".yml")) or path.is_file():
        return load_scenario(path)
    return load_scenario(builtin_scenario(spec))


def _window(options: FactoryOptions, base: Scenario) -> tuple[float, float]:
    if options.end is not None and options.duration is not None:
        raise ConfigError(path=None, field="duration", expected="either end or duration, not both")
    begin = options.begin if options.begin is not None else base.begin
    if options.end is not None:
        end = options.end
    elif options.duration is not None:
        end = begin + options.duration
    else:
        end = base.end
    if end <= begin:
        raise ConfigError(
            path=None,
            field="end",
            expected=f"a time after begin ({format_time(begin)})",
            got=format_time(end),
        )
    return begin, end


# --- one task ------------------------------------------------------------------------------------------


def _resolve_exporter(exporter: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(exporter):
        return exporter
    module, _, name = exporter.partition(":")
    return getattr(importlib.import_module(module), name)


def _attempts(work: Path) -> int:
    path = work / "attempts"
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def _run_variant(task: dict[str, Any]) -> dict[str, Any]:
    """Simulate one variant and export it to ``OUT/<id>/`` (a Ray task; also callable in-process)."""
    from roadtwin import toolchain

    toolchain.ensure_sumo()  # before anything imports libsumo or sumolib (GOTCHAS.md)
    from roadtwin.sim.run import run_scenario

    work = Path(task["work"])
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "attempts", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {time.time():.3f}\n")
    attempt = _attempts(work)
    if attempt <= task.get("faults", 0):
        raise RuntimeError(f"injected fault (attempt {attempt})")
    t0 = time.perf_counter()
    scenario = Scenario.model_validate(task["scenario"])
    result = run_scenario(
        scenario, workspace=Workspace.at(task["workspace"]), progress=False, report=False, record=RECORD
    )
    try:
        exporter = _resolve_exporter(task["exporter"])
        exporter(result.run_dir, out=Path(task["dataset"]), overwrite=True, progress=False)
    finally:
        if not task.get("keep_runs", False):
            shutil.rmtree(result.run_dir, ignore_errors=True)
    return {
        "id": task["id"],
        "attempts": attempt,
        "wall_s": round(time.perf_counter() - t0, 3),
        "sim_wall_s": round(result.wall_time_s, 3),
    }


# --- the factory ---------------------------------------------------------------------------------------


def _split_of(dataset: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        split = json.loads((dataset / "manifest.json").read_text(encoding="utf-8")).get("split")
        return str(split) if split is not None else None
    return None


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    inner = cause if isinstance(cause, BaseException) else exc
    text = " ".join(str(inner).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(inner).__name__}: {text}"


class _Progress:
    """A rich bar over finished variants, on stderr (or nothing)."""

    def __init__(self, *, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]variants[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task("variants", total=total, failed=0)
            self._bar.start()
        self._failed = 0

    def advance(self, *, failed: bool) -> None:
        self._failed += int(failed)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self._failed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _run_on_ray(
    tasks: list[dict[str, Any]],
    *,
    options: FactoryOptions,
    on_done: Callable[[str, dict[str, Any] | None, str], None],
) -> float:
    """Run ``tasks`` as Ray tasks; call ``on_done(id, result, error)`` as each ends; return Ray's start-up s."""
    ray = require("ray", extra="datasets")
    owns = not ray.is_initialized()
    t0 = time.perf_counter()
    if owns:
        ray.init(
            address=options.ray_address or None,
            num_cpus=options.num_cpus if not options.ray_address else None,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
            configure_logging=False,
        )
    startup = time.perf_counter() - t0
    try:
        # One task per fresh worker process: libsumo holds one simulation per process.
        remote = ray.remote(num_cpus=1, max_calls=1, max_retries=options.max_retries, retry_exceptions=True)(
            _run_variant
        )
        refs = {remote.remote(task): task["id"] for task in tasks}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    on_done(refs[ref], ray.get(ref), "")
                except ray.exceptions.RayError as exc:
                    on_done(refs[ref], None, _error_text(exc))
    finally:
        if owns:
            ray.shutdown()
    return startup


def generate(
    options: FactoryOptions,
    *,
    exporter: str | Callable[..., Any] = DEFAULT_EXPORTER,
    faults: Mapping[int, int] | None = None,
    local: bool = False,
) -> FactoryReport:
    """Run the factory: plan the variants, run the missing ones on Ray, export each, write the report.

    Parameters
    ----------
    options
        What to vary, how many, where and on which Ray.
    exporter
        ``f(run_dir, *, out, overwrite, progress)`` that writes a dataset and its ``manifest.json``
        last, or its ``"module:function"`` name (default :func:`roadtwin.datasets.export.export_run`).
    faults
        For tests: ``{variant index: attempts that raise}`` (more than ``max_retries`` never succeeds).
    local
        Run the tasks one after another in this process instead of on Ray (no retries; for
        measuring Ray's overhead).

    Returns
    -------
    FactoryReport
        Every planned variant with its status; ``report.json`` and ``report.csv`` are in ``out``.

    Raises
    ------
    ConfigError, ScenarioError
        Bad options or base scenario (nothing has run).
    """
    t_start = time.perf_counter()
    workspace = Workspace.at(options.workspace.resolve())
    base = _load_base(options.scenario)
    begin, end = _window(options, base)
    from roadtwin.sim.run import resolve_network

    # Built (or checked) once here, so that the workers never race to build the zone.
    net_file = resolve_network(base, workspace=workspace)
    edges = main_edges(net_file) if "incidents" in options.vary else {}
    if "incidents" in options.vary and not edges:
        raise ScenarioError(
            path=net_file, field="incidents", expected="a network with a main road (2+ car lanes, >= 100 m)"
        )
    variants = plan_variants(
        base, count=options.count, seed=options.seed, vary=options.vary, begin=begin, end=end, edges=edges
    )
    out = (options.out or workspace.datasets / f"factory-{base.name}__{options.seed}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "variants.csv", [{"index": v.index, "variant": v.id, **v.params} for v in variants])

    results: dict[str, VariantResult] = {}
    tasks = []
    for v in variants:
        dataset = out / v.id
        if (dataset / "manifest.json").is_file():
            results[v.id] = VariantResult(
                variant=v, status="skipped", split=_split_of(dataset), dataset=dataset
            )
            continue
        work = out / ".work" / v.id
        shutil.rmtree(work, ignore_errors=True)
        tasks.append(
            {"id": v.id, "scenario": v.scenario.model_dump(mode="json"), "workspace": str(workspace.root),
             "dataset": str(dataset), "work": str(work), "exporter": exporter,
             "faults": int((faults or {}).get(v.index, 0)), "keep_runs": options.keep_runs}
        )  # fmt: skip
    by_id = {v.id: v for v in variants}
    bar = _Progress(total=len(tasks), enabled=options.progress)

    def on_done(vid: str, res: dict[str, Any] | None, error: str) -> None:
        v, work = by_id[vid], out / ".work" / vid
        attempts = _attempts(work)
        if res is not None:
            dataset = out / vid
            results[vid] = VariantResult(
                variant=v, status="ok", attempts=attempts, wall_s=res["wall_s"], sim_wall_s=res["sim_wall_s"],
                split=_split_of(dataset), dataset=dataset,
            )  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
        else:
            results[vid] = VariantResult(variant=v, status="failed", attempts=attempts, error=error)
        bar.advance(failed=res is None)

    ray_s = 0.0
    try:
        if tasks and local:
            for task in tasks:
                try:
                    on_done(str(task["id"]), _run_variant(task), "")
                except Exception as exc:
                    on_done(str(task["id"]), None, _error_text(exc))
        elif tasks:
            ray_s = _run_on_ray(tasks, options=options, on_done=on_done)
    finally:
        bar.close()
        with contextlib.suppress(OSError):
            (out / ".work").rmdir()  # only when empty: failed variants keep their attempt logs
    ordered = [results[v.id] for v in variants if v.id in results]
    splits: dict[str, int] = {}
    for r in ordered:
        if r.split is not None:
            splits[r.split] = splits.get(r.split, 0) + 1
    report = FactoryReport(
        out=out, results=ordered, wall_s=time.perf_counter() - t_start, ray_s=ray_s, splits=splits
    )
    _write_csv(out / "report.csv", [r.row() for r in ordered])
    write_json(
        out / "report.json",
        {
            "scenario": base.name,
            "seed": options.seed,
            "count": options.count,
            "vary": options.vary,
            "window": [format_time(begin), format_time(end)],
            "max_retries": options.max_retries,
            "ray_address": options.ray_address,
            "wall_s": round(report.wall_s, 3),
            "ray_startup_s": round(ray_s, 3),
            "counts": {s: report.count(s) for s in ("ok", "skipped", "failed")},
            "splits": splits,
            "variants": [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.row().items()}
                for r in ordered
            ],
        },
    )
    return report


# --- CLI -----------------------------------------------------------------------------------------------


def generate_command(
    scenario: Annotated[
        str | None,
        typer.Option(help="Built-in scenario name or scenario YAML (default yizhuang_morning_peak)."),
    ] = None,
    count: Annotated[int | None, typer.Option(help="Number of variants (10).")] = None,
    vary: Annotated[
        str | None, typer.Option(help="Dimensions to vary: weather,demand,av_share,incidents (all), or none.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the variants' draws (0).")] = None,
    duration: Annotated[
        str | None,
        typer.Option(help="Simulate only this long from the scenario's begin (seconds or HH:MM[:SS])."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default WORKSPACE/datasets/factory-SCENARIO__SEED).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray).")
    ] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray (default: all).")] = None,
    max_retries: Annotated[int | None, typer.Option(help="Retries of a failed variant (2).")] = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Generate many variants of a scenario on Ray and export each as a dataset.

    Variant i depends only on (seed, i); datasets already in the output folder are skipped. A variant
    that fails is retried, then reported in report.csv while the others finish; the exit code is 1
    when any failed.
    """
    from roadtwin.config import load_options

    opts = load_options(
        FactoryOptions, config=config, scenario=scenario, count=count, vary=vary, seed=seed, duration=duration,
        out=out, ray_address=ray_address, num_cpus=num_cpus, max_retries=max_retries, workspace=workspace,
        progress=progress,
    )  # fmt: skip
    report = generate(opts)
    for r in report.failed:
        typer.echo(f"failed: {r.variant.id} after {r.attempts} attempts: {r.error}", err=True)
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(code=1)
