"""Run a scenario in SUMO and write a run folder.

A run folder (``runs/{scenario}__{controller}__{seed}__{timestamp}/``) holds ``config.yaml`` (the exact,
validated config), ``inputs/`` (routes, vehicle types, closures), SUMO's ``tripinfo.xml``,
``summary.xml`` and ``statistics.xml``, ``sumo.log``, ``metrics.json`` and ``plot.png``; a run recorded
for a dataset (``record``) also holds ``fcd.parquet`` and ``fcd-persons.parquet`` (SUMO's native FCD
Parquet: every vehicle and every person every step) and ``signals.xml`` (SUMO's ``SaveTLSSwitchStates``: every signal state change).
Every file is written under a temporary name and renamed when whole; ``metrics.json`` is written last,
so a run is complete exactly when it has one. A failed or interrupted run gets ``error.txt`` instead, and its SUMO
is closed (or killed) on the way out.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from roadtwin import __version__, toolchain
from roadtwin._io import write_json, write_text, write_yaml
from roadtwin.errors import ScenarioError, SimulationError
from roadtwin.sim.backend import DEFAULT_BACKEND, Backend, start
from roadtwin.sim.control import SignalControl
from roadtwin.sim.inputs import SimInputs, prepare_inputs
from roadtwin.sim.metrics import (
    RunMetrics,
    read_schedule,
    read_statistics,
    read_tripinfo,
    summarize,
)
from roadtwin.sim.scenario import Scenario
from roadtwin.workspace import Workspace

__all__ = [
    "FCD_ATTRIBUTES",
    "FIXED",
    "OUTPUTS",
    "RECORDINGS",
    "RunResult",
    "compute_metrics",
    "resolve_network",
    "run_inputs",
    "run_scenario",
    "simulate",
    "sumo_command",
]

#: The controller of a plain run: the network's own (fixed-time) programs. Others come from ``agents``.
FIXED = "fixed"

#: SUMO outputs of a run, written as ``NAME.tmp.xml`` and renamed to ``NAME.xml`` when whole.
OUTPUTS = ("tripinfo", "summary", "statistics", "edgedata")

#: What a run can record for a dataset (``record=``), and the files each becomes in the run folder.
RECORDINGS: dict[str, tuple[str, ...]] = {
    "fcd": ("fcd.parquet", "fcd-persons.parquet"),
    "signals": ("signals.xml",),
}

#: FCD attributes a recorded run writes (``edge`` is where persons are; vehicles have ``lane``).
FCD_ATTRIBUTES = "x,y,angle,type,speed,lane,edge,acceleration"

#: Aggregation period of the per-edge output (speed, density, occupancy, flow per edge).
EDGEDATA_PERIOD_S = 300

ProgressCallback = Callable[[float, float, int], None]


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder, its metrics and how long SUMO took."""

    run_dir: Path
    metrics: RunMetrics
    wall_time_s: float
    sim_time_s: float

    @property
    def real_time_factor(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.sim_time_s / self.wall_time_s if self.wall_time_s > 0 else float("nan")


def resolve_network(scenario: Scenario, *, workspace: Workspace) -> Path:
    """Return the ``.net.xml`` a scenario runs on, building the built-in zone on first use."""
    from roadtwin.maps import list_zones, network_for

    if scenario.network in list_zones():
        return network_for(workspace=workspace, name=scenario.network)
    path = Path(scenario.network)
    if not path.is_file():
        raise ScenarioError(
            path=scenario.source,
            field="network",
            expected=f"a built-in zone ({', '.join(list_zones())}) or an existing .net.xml file",
            got=scenario.network,
        )
    return path


def _check_record(record: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return ``record`` deduplicated in :data:`RECORDINGS` order; raise ``ValueError`` on an unknown kind."""
    unknown = [r for r in record if r not in RECORDINGS]
    if unknown:
        raise ValueError(f"unknown recording {unknown[0]!r}: expected any of {', '.join(RECORDINGS)}")
    return tuple(r for r in RECORDINGS if r in record)


def sumo_command(
    inputs: SimInputs,
    *,
    out_dir: Path,
    time_to_teleport: float = -1,
    outputs: bool = True,
    record: tuple[str, ...] = (),
) -> list[str]:
    """Return the ``sumo`` command line for ``inputs``, writing outputs under ``out_dir``.

    Output files get temporary names (``*.tmp.xml``); :func:`simulate` renames them when whole. With
    ``outputs``, also writes ``out_dir/outputs.add.xml`` (5-minute per-edge aggregates). ``record``
    adds the dataset recordings of :data:`RECORDINGS`: ``"fcd"`` (``fcd.tmp.parquet`` for vehicles and
    ``fcd-persons.tmp.parquet`` for persons, the columns of :data:`FCD_ATTRIBUTES`) and ``"signals"`` (``signals.tmp.xml``, needs ``outputs``).
    """
    record = _check_record(record)
    cmd = [
        toolchain.binary("sumo"),
        "-n", str(inputs.net_file),
        "-b", f"{inputs.begin:g}",
        "-e", f"{inputs.end:g}",
        "--seed", str(inputs.seed),
        "--time-to-teleport", f"{time_to_teleport:g}",
        "--no-step-log", "true",
        "--duration-log.disable", "true",
        "--error-log", str(out_dir / "sumo-errors.log"),
    ]  # fmt: skip
    if inputs.route_files:
        cmd += ["-r", ",".join(str(p) for p in inputs.route_files)]
    if inputs.additional_files and not outputs:
        cmd += ["-a", ",".join(str(p) for p in inputs.additional_files)]
    if "fcd" in record:
        # Only the columns a dataset uses. Persons go to their own file: they have no acceleration, and
        # SUMO's Parquet writer logs an error for every person row that lacks a vehicle column.
        cmd += [
            "--fcd-output", str(out_dir / "fcd.tmp.parquet"),
            "--person-fcd-output", str(out_dir / "fcd-persons.tmp.parquet"),
            "--fcd-output.attributes", FCD_ATTRIBUTES,
        ]  # fmt: skip
    if outputs:
        cmd += [
            "--tripinfo-output", str(out_dir / "tripinfo.tmp.xml"),
            "--tripinfo-output.write-unfinished", "true",
            "--summary-output", str(out_dir / "summary.tmp.xml"),
            "--statistic-output", str(out_dir / "statistics.tmp.xml"),
        ]  # fmt: skip
        # keep in step with OUTPUTS
        outputs_add = out_dir / "outputs.add.xml"
        # State changes only (not every step): the export expands them per step.
        signals = (
            '    <timedEvent type="SaveTLSSwitchStates" dest="signals.tmp.xml"/>\n'
            if "signals" in record
            else ""
        )
        write_text(
            outputs_add,
            f'<additional>\n    <edgeData id="edges" period="{EDGEDATA_PERIOD_S}" '
            f'file="edgedata.tmp.xml" excludeEmpty="true"/>\n{signals}</additional>\n',
        )
        cmd += ["-a", ",".join([*(str(p) for p in inputs.additional_files), str(outputs_add)])]
    return [*cmd, *inputs.extra_args]


@contextlib.contextmanager
def _native_output_to(log_path: Path) -> Iterator[IO[str]]:
    """Send SUMO's own console output (fd 1 and 2 of this process) to ``log_path``.

    libsumo runs inside this process and prints warnings straight to the file descriptors; the CLI
    keeps its promise of one clean line per error by moving them to the run's log. Yields a stream
    to the real terminal for the progress bar.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_err), "w", buffering=1, closefd=True)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()


def _sumo_version() -> str:
    try:
        from importlib.metadata import version

        return version("eclipse-sumo")
    except Exception:  # pragma: no cover
        return "unknown"


def run_scenario(
    scenario: Scenario,
    *,
    workspace: Workspace,
    backend: Backend = DEFAULT_BACKEND,
    controller: SignalControl | None = None,
    time_to_teleport: float = -1,
    progress: bool | ProgressCallback = True,
    report: bool = True,
    step_chunk_s: float = 60.0,
    record: tuple[str, ...] = (),
) -> RunResult:
    """Simulate ``scenario`` and write a complete run folder under ``workspace.runs``.

    Parameters
    ----------
    scenario
        A validated scenario.
    workspace
        Where the network is built (once) and the run folder is written.
    backend
        ``"libsumo"`` (default) or ``"traci"``.
    controller
        The signal controller (see ``roadtwin.agents``); ``None`` runs the network's own programs.
    time_to_teleport
        SUMO's ``--time-to-teleport``; ``-1`` (default) disables teleporting, as in REFERENCE.md.
    progress
        Show a progress bar (``True``), nothing (``False``), or call ``f(sim_time, end, running)``.
    report
        Also write ``plot.png`` and ``network.png``.
    step_chunk_s
        Simulated seconds per call into SUMO when no controller acts in between.
    record
        Dataset recordings (:data:`RECORDINGS`): ``"fcd"`` (trajectories of every vehicle and person)
        and ``"signals"`` (signal states), for ``roadtwin datasets export``.
    """
    net_file = resolve_network(scenario, workspace=workspace)
    return run_inputs(
        lambda inputs_dir: prepare_inputs(scenario, net_file=net_file, out_dir=inputs_dir),
        name=scenario.name,
        seed=scenario.seed,
        config={"scenario": scenario.model_dump(mode="json")},
        workspace=workspace,
        backend=backend,
        controller=controller,
        time_to_teleport=time_to_teleport,
        progress=progress,
        report=report,
        step_chunk_s=step_chunk_s,
        record=record,
    )


def run_inputs(
    make_inputs: Callable[[Path], SimInputs],
    *,
    name: str,
    seed: int,
    config: dict[str, object],
    workspace: Workspace,
    backend: Backend = DEFAULT_BACKEND,
    controller: SignalControl | None = None,
    time_to_teleport: float = -1,
    progress: bool | ProgressCallback = True,
    report: bool = True,
    step_chunk_s: float = 60.0,
    record: tuple[str, ...] = (),
) -> RunResult:
    """Write a run folder for the inputs ``make_inputs(run_dir / "inputs")`` returns.

    The general form of :func:`run_scenario`, for inputs that do not come from a RoadTwin scenario
    (e.g. RESCO's route files). ``config`` describes where the inputs came from and is saved in
    ``config.yaml`` beside the run options.
    """
    controller_name = controller.name if controller is not None else FIXED
    record = _check_record(record)
    run_dir = workspace.new_run_dir(scenario=name, controller=controller_name, seed=seed)
    try:
        inputs = make_inputs(run_dir / "inputs")
        write_yaml(
            run_dir / "config.yaml",
            {
                **config,
                "run": {
                    "backend": backend,
                    "controller": controller_name,
                    "controller_options": getattr(controller, "options", {}),
                    "time_to_teleport": time_to_teleport,
                    **({"record": list(record)} if record else {}),
                    "network_file": str(inputs.net_file),
                    "seed": seed,
                    "roadtwin_version": __version__,
                    "sumo_version": _sumo_version(),
                },
            },
        )
        if controller is not None:
            inputs = controller.prepare(inputs, work_dir=run_dir / "inputs")
        wall = simulate(
            inputs,
            out_dir=run_dir,
            backend=backend,
            controller=controller,
            time_to_teleport=time_to_teleport,
            progress=progress,
            step_chunk_s=step_chunk_s,
            record=record,
        )
        metrics = compute_metrics(run_dir, inputs=inputs)
        if report:
            from roadtwin.sim.report import plot_network, plot_run

            plot_run(run_dir, metrics=metrics)
            plot_network(run_dir, net_file=inputs.net_file)
        write_json(run_dir / "metrics.json", {**metrics.as_dict(), "wall_time_s": round(wall, 3)})
    except BaseException as exc:
        reason = str(exc) if not isinstance(exc, KeyboardInterrupt) else "interrupted"
        with contextlib.suppress(OSError):
            write_text(run_dir / "error.txt", f"{type(exc).__name__}: {reason}\n")
        raise
    return RunResult(run_dir=run_dir, metrics=metrics, wall_time_s=wall, sim_time_s=inputs.end - inputs.begin)


def compute_metrics(run_dir: Path, *, inputs: SimInputs) -> RunMetrics:
    """Compute a run's :class:`RunMetrics` from the files in its folder."""
    vehicles, persons = read_tripinfo(run_dir / "tripinfo.xml")
    schedule = read_schedule(inputs.route_files)
    stats = read_statistics(run_dir / "statistics.xml")
    return summarize(
        vehicles=vehicles,
        schedule=schedule,
        begin=inputs.begin,
        end=inputs.end,
        persons=persons,
        teleports=int(stats.get("teleports", 0)),
    )


def simulate(
    inputs: SimInputs,
    *,
    out_dir: Path,
    backend: Backend = DEFAULT_BACKEND,
    controller: SignalControl | None = None,
    time_to_teleport: float = -1,
    progress: bool | ProgressCallback = False,
    step_chunk_s: float = 60.0,
    record: tuple[str, ...] = (),
) -> float:
    """Drive SUMO over ``inputs`` from ``begin`` to ``end``, writing its outputs into ``out_dir``.

    Returns the wall time in seconds. SUMO is closed (or killed) on every exit; its outputs
    (``tripinfo.xml``, ``summary.xml``, ``statistics.xml``) appear under their final names only
    when the simulation completed. A runtime ``controller`` acts every ``decision_interval_s``;
    otherwise SUMO runs in ``step_chunk_s`` chunks with no Python in between. ``record`` adds the
    dataset recordings (:data:`RECORDINGS`), renamed to their final names likewise.
    """
    record = _check_record(record)
    cmd = sumo_command(inputs, out_dir=out_dir, time_to_teleport=time_to_teleport, record=record)
    wall = _drive(
        cmd,
        inputs=inputs,
        backend=backend,
        controller=controller,
        log_path=out_dir / "sumo.log",
        label=out_dir.name,
        progress=progress,
        step_chunk_s=step_chunk_s,
    )
    for name in OUTPUTS:
        os.replace(out_dir / f"{name}.tmp.xml", out_dir / f"{name}.xml")
    for kind in record:
        for name in RECORDINGS[kind]:
            final = out_dir / name
            os.replace(final.with_name(f"{final.stem}.tmp{final.suffix}"), final)
    return wall


def _drive(
    cmd: list[str],
    *,
    inputs: SimInputs,
    backend: Backend,
    controller: SignalControl | None,
    log_path: Path,
    label: str,
    progress: bool | ProgressCallback,
    step_chunk_s: float,
) -> float:
    interval = controller.decision_interval_s if controller is not None else None
    with _native_output_to(log_path) as terminal:
        bar = _progress_bar(terminal, inputs) if progress is True else None
        t0 = time.perf_counter()
        session = start(cmd, backend=backend, label=label)
        try:
            if controller is not None:
                controller.start(session)
            t = inputs.begin
            shown = t
            while t < inputs.end:
                t = min(t + (interval or step_chunk_s), inputs.end)
                session.step(t)
                if interval is not None and t < inputs.end:
                    controller.act(session)  # type: ignore[union-attr]
                if t - shown >= step_chunk_s or t >= inputs.end:
                    shown = t
                    running = session.conn.vehicle.getIDCount()
                    if bar is not None:
                        bar.update(t, running)
                    elif callable(progress):
                        progress(t, inputs.end, running)
        except Exception as exc:
            if _is_sumo_error(exc):
                raise SimulationError(f"SUMO failed mid-run: {exc} (see {log_path})") from exc
            raise
        finally:
            if controller is not None:
                controller.close()
            session.close()
            if bar is not None:
                bar.close()
        return time.perf_counter() - t0


def _is_sumo_error(exc: BaseException) -> bool:
    """Errors raised by TraCI or libsumo (SUMO's side), as opposed to bugs in Python code."""
    return type(exc).__module__.split(".")[0] in ("traci", "libsumo")


class _Bar:
    """A rich progress bar over simulated time, drawn on the real terminal."""

    def __init__(self, terminal: IO[str], inputs: SimInputs) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._begin = inputs.begin
        self._progress = Progress(
            TextColumn("[bold]simulating[/] {task.fields[clock]}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[running]} vehicles"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=terminal, stderr=False),
            transient=False,
        )
        self._task = self._progress.add_task(
            "sim", total=inputs.end - inputs.begin, clock=_clock(inputs.begin), running=0
        )
        self._progress.start()

    def update(self, t: float, running: int) -> None:
        self._progress.update(self._task, completed=t - self._begin, clock=_clock(t), running=running)

    def close(self) -> None:
        self._progress.stop()


def _progress_bar(terminal: IO[str], inputs: SimInputs) -> _Bar:
    return _Bar(terminal, inputs)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
