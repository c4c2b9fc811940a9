"""Evaluation of signal controllers over several seeds: one tidy table, a summary, plots and a report.

:func:`evaluate` runs every (controller, seed) pair on one scenario through
:func:`roadtwin.sim.run.run_inputs` (each run gets its own run folder) and writes an evaluation folder
``workspace/evaluations/{scenario}__{timestamp}/``:

- ``results.csv``: one row per run (:data:`RESULT_COLUMNS`);
- ``summary.csv``: mean and standard deviation of every metric per controller;
- ``delay.png``, ``metrics.png`` (bars with the standard deviation as error bars) and
  ``delay_by_seed.png``;
- ``report.html`` (self-contained) and ``config.yaml``.

The folder is assembled under a temporary name and renamed when whole. Seeds: an integer ``N`` means
seeds ``0 .. N-1``; a sequence is used as given. The queue is measured for every controller by
:class:`QueueProbe`: halting vehicles (speed < 0.1 m/s, i.e. with waiting time > 0) on the incoming lanes
of each signal, every decision step (10 s), averaged over signals and steps (REFERENCE.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roadtwin.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from roadtwin.agents.base import SignalController
    from roadtwin.sim.backend import Backend, SumoSession
    from roadtwin.sim.run import RunResult
    from roadtwin.workspace import Workspace

__all__ = [
    "METRIC_COLUMNS",
    "RESULT_COLUMNS",
    "EvaluationResult",
    "QueueProbe",
    "evaluate",
    "routing_cells",
    "seed_list",
]

#: Columns of ``results.csv``, in order.
RESULT_COLUMNS = (
    "scenario",
    "controller",
    "seed",
    "resco_delay_s",
    "exact_delay_s",
    "trip_time_s",
    "wait_s",
    "queue",
    "never_inserted",
    "blocked",
    "still_running",
    "throughput_veh_h",
    "run_dir",
    "wall_time_s",
    "signals",
    "routing",
    "penetration",
)
#: The metric columns summarised per controller.
METRIC_COLUMNS = RESULT_COLUMNS[3:12]

_HALTING_NUMBER = 0x14  # traci.constants.LAST_STEP_VEHICLE_HALTING_NUMBER
_LABELS = {
    "resco_delay_s": "RESCO delay (s)",
    "exact_delay_s": "exact delay (s)",
    "trip_time_s": "trip time (s)",
    "wait_s": "wait (s)",
    "queue": "queue (veh per signal)",
    "never_inserted": "never inserted (veh)",
    "blocked": "blocked at insertion > 60 s (veh)",
    "still_running": "still running (veh)",
    "throughput_veh_h": "throughput (veh/h)",
}


class QueueProbe:
    """Wraps a controller and measures the queue at every decision step, for any controller.

    The probe acts every ``decision_interval_s`` of the controller it wraps (``interval_s`` for one that
    only changes programs): it reads the halting vehicles on the incoming lanes of every signal with two
    or more greens, then lets the controller act. The lanes are subscribed before the controller starts,
    so a controller's own :class:`~roadtwin.sim.signals.SignalMonitor` subscriptions (which always hold
    the halting number on incoming lanes) take over where they overlap; a value missing from the
    subscriptions is read with a getter.

    Parameters
    ----------
    controller
        The controller to run.
    interval_s
        Measurement interval for controllers without runtime control (s).
    """

    def __init__(self, controller: SignalController, *, interval_s: float = 10.0) -> None:
        self.controller = controller
        self.name = controller.name
        self.options = controller.options
        self.decision_interval_s = controller.decision_interval_s or float(interval_s)
        self._acts = controller.decision_interval_s is not None
        self._lanes: list[list[str]] = []
        self._samples: list[float] = []

    def prepare(self, inputs: Any, *, work_dir: Path) -> Any:
        """Let the controller prepare the inputs."""
        return self.controller.prepare(inputs, work_dir=work_dir)

    def start(self, session: SumoSession) -> None:
        """Find the signals' incoming lanes, subscribe them, then start the controller."""
        from roadtwin.sim.signals import read_signal_network

        network = read_signal_network(session.conn)
        self._lanes = [list(network.programs[t].in_lanes) for t in network.controllable()]
        self._lanes = [lanes for lanes in self._lanes if lanes]
        for lane in {lane for lanes in self._lanes for lane in lanes}:
            session.conn.lane.subscribe(lane, (_HALTING_NUMBER,))
        self._samples = []
        self.controller.start(session)

    def act(self, session: SumoSession) -> None:
        """Measure the queue, then let the controller act."""
        self._measure(session.conn)
        if self._acts:
            self.controller.act(session)

    def _measure(self, conn: Any) -> None:
        if not self._lanes:
            return
        res = conn.lane.getAllSubscriptionResults()
        halting: dict[str, float] = {}
        per_signal = []
        for lanes in self._lanes:
            total = 0.0
            for lane in lanes:
                value = halting.get(lane)
                if value is None:
                    row = res.get(lane) or {}
                    raw = row.get(_HALTING_NUMBER)
                    value = float(raw if raw is not None else conn.lane.getLastStepHaltingNumber(lane))
                    halting[lane] = value
                total += value
            per_signal.append(total)
        self._samples.append(float(np.mean(per_signal)))

    def close(self) -> None:
        """Close the controller."""
        self.controller.close()

    @property
    def queue(self) -> float:
        """Mean queue over decision steps and signals (vehicles); NaN without signals."""
        return float(np.mean(self._samples)) if self._samples else float("nan")


@dataclass(frozen=True)
class EvaluationResult:
    """A finished evaluation.

    Attributes
    ----------
    folder
        The evaluation folder.
    results
        One row per run (:data:`RESULT_COLUMNS`).
    summary
        Mean and standard deviation per controller (``{metric}_mean``, ``{metric}_std``, ``runs``).
    runs
        The runs, in the order of ``results``.
    """

    folder: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    runs: list[RunResult] = field(default_factory=list, repr=False)


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """Seeds to run: ``N`` gives ``0 .. N-1``; a sequence is used as given (duplicates dropped)."""
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ConfigError(path=None, field="seeds", expected="at least 1 seed", got=seeds)
        return list(range(int(seeds)))
    out = list(dict.fromkeys(int(s) for s in seeds))
    if not out or any(s < 0 for s in out):
        raise ConfigError(path=None, field="seeds", expected="one or more seeds >= 0", got=list(seeds))
    return out


def _num(value: float | int | None) -> float:
    return float("nan") if value is None else float(value)


def evaluate(
    *,
    scenario: str,
    controllers: Sequence[str],
    seeds: int | Sequence[int],
    workspace: Workspace,
    backend: Backend = "libsumo",
    duration_s: float | None = None,
    controller_options: dict[str, dict[str, Any]] | None = None,
    progress: bool | Callable[[int, int, str], None] = True,
    run_report: bool = False,
    routing: Sequence[str] = ("none",),
    penetrations: Sequence[float] = (0.0,),
    routing_options: dict[str, dict[str, Any]] | None = None,
) -> EvaluationResult:
    """Run every controller over every seed on ``scenario`` and write an evaluation folder.

    Parameters
    ----------
    scenario
        A RESCO name, ``zone``, a built-in scenario name or a scenario YAML file
        (:func:`~roadtwin.agents.scenarios.resolve_scenario`).
    controllers
        Controller specs (``fixed``, ``webster``, ``actuated``, ``max-pressure``, ``rl:PATH`` ...).
    seeds
        ``N`` for seeds ``0 .. N-1``, or the seeds themselves.
    workspace
        Where run folders (``runs/``) and the evaluation folder (``evaluations/``) go.
    backend
        ``"libsumo"`` (default) or ``"traci"``.
    duration_s
        Simulate only the first ``duration_s`` seconds of the scenario's window.
    controller_options
        Extra keyword options per controller spec (``{"max-pressure": {"max_green": 45}}``).
    progress
        A rich progress bar over runs (``True``), nothing, or ``f(done, total, label)``.
    run_report
        Also write each run's own plots (``plot.png``, ``network.png``).
    routing
        Routing controller specs (``none``, ``rerouting``, ``guidance``, ``rl-routing:PATH``), each run
        beside every signal controller (:class:`~roadtwin.agents.combined.CombinedControl`).
    penetrations
        Connected-vehicle shares the routing controllers run at; ``none`` (or a share of 0) runs once.
    routing_options
        Extra keyword options per routing spec (``{"guidance": {"update_s": 30}}``).

    Raises
    ------
    ConfigError, ScenarioError
        An unknown controller or scenario, or bad seeds; checked before anything runs.
    """
    import pandas as pd

    from roadtwin._io import atomic_dir, write_yaml
    from roadtwin.agents.base import make_controller
    from roadtwin.agents.combined import CombinedControl
    from roadtwin.agents.routing import make_router
    from roadtwin.agents.scenarios import resolve_scenario
    from roadtwin.sim.run import run_inputs

    if not controllers:
        raise ConfigError(path=None, field="controller", expected="at least one controller", got=[])
    seed_values = seed_list(seeds)
    options = controller_options or {}
    specs = list(dict.fromkeys(controllers))
    for spec in specs:  # fail on a bad name before any simulation
        make_controller(spec, **options.get(spec, {}))
    r_options = routing_options or {}
    routes = routing_cells(routing, penetrations)
    for router, share in routes:
        make_router(router, penetration=share, **r_options.get(router, {}))
    resolved = resolve_scenario(scenario, workspace=workspace, duration_s=duration_s)

    jobs = [(spec, cell, seed) for spec in specs for cell in routes for seed in seed_values]
    rows: list[dict[str, Any]] = []
    runs: list[RunResult] = []
    bar = _RunBar(len(jobs)) if progress is True else None
    try:
        for done, (spec, (router_spec, share), seed) in enumerate(jobs):
            signal = make_controller(spec, **options.get(spec, {}))
            router = make_router(router_spec, penetration=share, seed=seed, **r_options.get(router_spec, {}))
            control = CombinedControl(signal, router)
            label = f"{resolved.name} · {spec} {router.label} · seed {seed}"
            if bar is not None:
                bar.update(done, label)
            elif callable(progress):
                progress(done, len(jobs), label)
            probe = QueueProbe(control, interval_s=resolved.decision_interval_s)
            result = run_inputs(
                lambda out, s=seed: resolved.make_inputs(out, s),
                name=resolved.name,
                seed=seed,
                config={
                    **resolved.config,
                    "evaluation": {
                        "controller_spec": spec,
                        "routing_spec": router_spec,
                        "penetration": share,
                    },
                },
                workspace=workspace,
                backend=backend,
                controller=probe,
                progress=False,
                report=run_report,
            )
            m = result.metrics
            rows.append(
                {
                    "scenario": resolved.name,
                    "controller": spec if router.label == "none" else f"{spec}+{router.label}",
                    "seed": seed,
                    "resco_delay_s": _num(m.resco_delay_s),
                    "exact_delay_s": _num(m.exact_delay_s),
                    "trip_time_s": _num(m.mean_trip_time_s),
                    "wait_s": _num(m.mean_wait_s),
                    "queue": probe.queue,
                    "never_inserted": int(m.vehicles_never_inserted),
                    "blocked": int(m.vehicles_blocked),
                    "still_running": int(m.vehicles_still_running),
                    "throughput_veh_h": _num(m.throughput_veh_h),
                    "run_dir": str(result.run_dir),
                    "wall_time_s": round(result.wall_time_s, 3),
                    "signals": spec,
                    "routing": router.name if router.label != "none" else "none",
                    "penetration": share if router.label != "none" else 0.0,
                }
            )
            runs.append(result)
        if bar is not None:
            bar.update(len(jobs), "done")
    finally:
        if bar is not None:
            bar.close()

    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    summary = summarize_results(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = workspace.root / "evaluations"
    folder = root / f"{resolved.name}__{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = root / f"{resolved.name}__{stamp}-{n}"
    with atomic_dir(folder) as tmp:
        results.to_csv(tmp / "results.csv", index=False, float_format="%.4f")
        summary.to_csv(tmp / "summary.csv", index=False, float_format="%.4f")
        images = plot_results(results, summary, out_dir=tmp)
        write_yaml(
            tmp / "config.yaml",
            {
                "scenario": str(scenario),
                "scenario_name": resolved.name,
                "window": [resolved.begin, resolved.end],
                "controllers": specs,
                "controller_options": options,
                "routing": [{"routing": r, "penetration": p} for r, p in routes],
                "routing_options": r_options,
                "seeds": seed_values,
                "backend": backend,
                "duration_s": duration_s,
                "decision_interval_s": resolved.decision_interval_s,
                "source": resolved.config,
            },
        )
        _write_report(
            tmp / "report.html", results=results, summary=summary, images=images, title=resolved.name
        )
    return EvaluationResult(folder=folder, results=results, summary=summary, runs=runs)


def routing_cells(routing: Sequence[str], penetrations: Sequence[float]) -> list[tuple[str, float]]:
    """The (routing spec, penetration) pairs to run: every spec at every share, ``none`` once.

    A share of 0 is ``none`` whatever the spec (no vehicle is connected). Order: as given.
    """
    shares = list(dict.fromkeys(float(p) for p in penetrations)) or [0.0]
    bad = [p for p in shares if not 0.0 <= p <= 1.0]
    if bad:
        raise ConfigError(
            path=None, field="penetration", expected="shares in [0, 1] (0.3 for 30 %)", got=bad[0]
        )
    cells: list[tuple[str, float]] = []
    for spec in dict.fromkeys(routing or ["none"]):
        for share in shares:
            cell = ("none", 0.0) if spec == "none" or share == 0.0 else (spec, share)
            if cell not in cells:
                cells.append(cell)
    return cells


def summarize_results(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1; 0 for one seed) of every metric per controller, in the
    order the controllers first appear."""
    import pandas as pd

    order = list(dict.fromkeys(results["controller"]))
    grouped = results.groupby("controller", sort=False)
    out = pd.DataFrame({"controller": order})
    out["runs"] = [int(grouped.size()[c]) for c in order]
    for col in METRIC_COLUMNS:
        mean = grouped[col].mean()
        std = grouped[col].std(ddof=1).fillna(0.0)
        out[f"{col}_mean"] = [float(mean[c]) for c in order]
        out[f"{col}_std"] = [float(std[c]) for c in order]
    return out


def plot_results(results: pd.DataFrame, summary: pd.DataFrame, *, out_dir: Path) -> list[Path]:
    """Write ``delay.png``, ``metrics.png`` and ``delay_by_seed.png``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["controller"])
    x = np.arange(len(names))
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(len(names))]
    paths = []

    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 4))
    width = 0.38
    for k, col in enumerate(("resco_delay_s", "exact_delay_s")):
        ax.bar(
            x + (k - 0.5) * width,
            summary[f"{col}_mean"],
            width,
            yerr=summary[f"{col}_std"],
            capsize=4,
            label=_LABELS[col],
            color=colors if k == 0 else None,
            alpha=1.0 if k == 0 else 0.45,
            edgecolor="black",
        )
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("mean delay per vehicle (s)")
    ax.set_title(f"{results['scenario'].iloc[0]}: delay (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "delay.png"))

    cols = [c for c in METRIC_COLUMNS if c not in ("resco_delay_s", "exact_delay_s")]
    fig, axes = plt.subplots(2, math.ceil(len(cols) / 2), figsize=(4 * math.ceil(len(cols) / 2), 6.5))
    for ax, col in zip(np.ravel(axes), cols, strict=False):
        ax.bar(x, summary[f"{col}_mean"], yerr=summary[f"{col}_std"], capsize=3, color=colors)
        ax.set_title(_LABELS[col], fontsize=10)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    for ax in np.ravel(axes)[len(cols) :]:
        ax.set_visible(False)
    fig.suptitle("mean ± std over seeds")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "metrics.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, color in zip(names, colors, strict=True):
        sub = results[results["controller"] == name].sort_values("seed")
        ax.plot(sub["seed"], sub["resco_delay_s"], "o-", color=color, label=name)
    ax.set_xlabel("seed")
    ax.set_ylabel(_LABELS["resco_delay_s"])
    ax.set_title("delay per seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "delay_by_seed.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_report(
    path: Path, *, results: pd.DataFrame, summary: pd.DataFrame, images: list[Path], title: str
) -> None:
    from roadtwin.report import Report

    report = Report(
        title=f"Signal controllers on {title}",
        subtitle=f"{len(results)} runs, seeds {sorted(set(results['seed']))}",
        footer="RoadTwin · delays per REFERENCE.md (RESCO's and the exact one)",
    )
    sec = report.section("Summary", "Mean ± standard deviation over seeds.")
    header = ["controller", "runs", *(_LABELS[c] for c in METRIC_COLUMNS)]
    body = [
        [row["controller"], int(row["runs"])]
        + [f"{row[f'{c}_mean']:.2f} ± {row[f'{c}_std']:.2f}" for c in METRIC_COLUMNS]
        for _, row in summary.iterrows()
    ]
    sec.tables.append((header, body))
    sec.images.extend(images)
    runs = report.section("Runs")
    cols = [c for c in RESULT_COLUMNS if c != "run_dir"]
    runs.tables.append((cols, list(results[cols].itertuples(index=False, name=None))))
    report.write(path)


class _RunBar:
    """A rich progress bar over the runs of an evaluation."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]evaluating[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[label]}"),
            TimeElapsedColumn(),
            transient=False,
            # Refresh only between runs: during a run, libsumo's output goes to the run's log (fds 1, 2).
            auto_refresh=False,
        )
        self._task = self._progress.add_task("runs", total=total, label="")
        self._progress.start()

    def update(self, done: int, label: str) -> None:
        self._progress.update(self._task, completed=done, label=label)
        self._progress.refresh()

    def close(self) -> None:
        self._progress.stop()
