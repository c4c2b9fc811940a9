"""What-if runs started from the dashboard: a short simulation in a background process.

A job lives in ``workspace/whatif/<job-id>/``: ``request.json`` (the choices), ``progress.json``
(``state``, ``fraction``, ``message``; rewritten as the simulation advances), ``result.json`` (the run
ids and metrics of the what-if and its baseline) and ``job.log``. The job is a separate process
(``python -m roadtwin.dashboards.whatif JOB_DIR``) in its own process group, because libsumo runs one
simulation per process; cancelling terminates the group (SUMO included) and the run is marked
interrupted. The baseline is the same window under the network's fixed-time programs, clear weather,
no incident and the scenario's own AV share; it is run once per window and reused.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roadtwin._io import read_json
from roadtwin.agents.rl import BEST_ZONE_CONTROLLER

__all__ = [
    "CONTROLLER_CHOICES",
    "ROUTING_CHOICES",
    "WEATHER_CHOICES",
    "WhatIfRequest",
    "available_controllers",
    "cancel_job",
    "default_controller",
    "job_status",
    "start_job",
]

#: Signal controllers a what-if may run; the last, the zone's best, is the policy shipped for the zone
#: (it needs the rl extra).
CONTROLLER_CHOICES = ("fixed", "actuated", "webster", "max-pressure", BEST_ZONE_CONTROLLER)
WEATHER_CHOICES = ("clear", "rain", "snow", "fog")
ROUTING_CHOICES = ("none", "rerouting", "guidance")
_JOB_ID = re.compile(r"^[0-9a-f]{12}$")
_PROCS: dict[str, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class WhatIfRequest:
    """The choices of one what-if run.

    Attributes
    ----------
    controller
        A signal controller name (:data:`CONTROLLER_CHOICES`; the page offers
        :func:`available_controllers` and starts on :func:`default_controller`).
    weather
        A weather condition (:data:`WEATHER_CHOICES`).
    av_share
        Share of automated vehicles in the mix, 0 to 0.9.
    incident_edge
        Edge id with its leftmost lane blocked during the window; ``""`` for none.
    begin
        Start of the window (``HH:MM``) within the built-in morning peak.
    minutes
        Length of the window in minutes.
    seed
        Random seed of the demand.
    routing
        Route guidance for connected vehicles (:data:`ROUTING_CHOICES`): ``none``, SUMO's ``rerouting``
        device or RoadTwin's forecast-aware ``guidance``.
    penetration
        Share of connected vehicles that follow the guidance, 0 to 1.
    """

    controller: str = "max-pressure"
    weather: str = "clear"
    av_share: float = 0.10
    incident_edge: str = ""
    begin: str = "07:45"
    minutes: int = 15
    seed: int = 42
    routing: str = "none"
    penetration: float = 0.3
    extra: dict[str, Any] = field(default_factory=dict)

    def baseline(self) -> WhatIfRequest:
        """The same window with fixed-time signals, clear weather, no incident and the default AV share."""
        return WhatIfRequest(begin=self.begin, minutes=self.minutes, seed=self.seed, controller="fixed")


@functools.cache
def available_controllers() -> tuple[str, ...]:
    """:data:`CONTROLLER_CHOICES` that run in this installation: ``rl:zone`` needs the rl extra
    (stable-baselines3), which is looked up here, not imported (the job process loads it)."""
    from importlib.util import find_spec

    rl = find_spec("stable_baselines3") is not None
    return tuple(c for c in CONTROLLER_CHOICES if rl or not c.startswith("rl:"))


def default_controller() -> str:
    """The zone's best signal controller that runs here: the shipped policy, else max-pressure."""
    return BEST_ZONE_CONTROLLER if BEST_ZONE_CONTROLLER in available_controllers() else "max-pressure"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _jobs_dir(workspace: Path) -> Path:
    return Path(workspace).resolve() / "whatif"


def _job_dir(workspace: Path, job_id: str) -> Path | None:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        return None
    return _jobs_dir(workspace) / job_id


def start_job(*, workspace: Path, request: WhatIfRequest) -> str:
    """Start a what-if job in a background process and return its id."""
    if request.controller not in available_controllers():
        raise ValueError(
            f"unknown controller {request.controller!r}"
            + (" (it needs the rl extra)" if request.controller in CONTROLLER_CHOICES else "")
        )
    if request.weather not in WEATHER_CHOICES:
        raise ValueError(f"unknown weather {request.weather!r}")
    job_id = uuid.uuid4().hex[:12]
    job_dir = _jobs_dir(workspace) / job_id
    job_dir.mkdir(parents=True)
    _write_json(job_dir / "request.json", asdict(request))
    _write_json(job_dir / "progress.json", {"state": "starting", "fraction": 0.0, "message": "starting"})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(job_dir / "job.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roadtwin.dashboards.whatif",
                str(job_dir),
                str(Path(workspace).resolve()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    _PROCS[job_id] = proc
    return job_id


def job_status(*, workspace: Path, job_id: str) -> dict[str, Any]:
    """The job's progress (``state``: starting, running, done, failed, cancelled) and, when done, result."""
    job_dir = _job_dir(workspace, job_id)
    if job_dir is None or not job_dir.is_dir():
        return {"state": "unknown", "fraction": 0.0, "message": "no such job"}
    status = read_json(job_dir / "progress.json")
    proc = _PROCS.get(job_id)
    if status.get("state") in ("starting", "running") and proc is not None and proc.poll() is not None:
        # The process ended without saying so (killed, crashed): report it rather than spin forever.
        status = {"state": "failed", "fraction": status.get("fraction", 0.0), "message": _last_line(job_dir)}
    if status.get("state") == "done":
        status["result"] = read_json(job_dir / "result.json")
    return status


def cancel_job(*, workspace: Path, job_id: str, timeout_s: float = 10.0) -> bool:
    """Terminate a running job's process group (its SUMO included); return whether one was running."""
    job_dir = _job_dir(workspace, job_id)
    proc = _PROCS.pop(job_id, None)
    if job_dir is None or proc is None or proc.poll() is not None:
        return False
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    _write_json(job_dir / "progress.json", {"state": "cancelled", "fraction": 0.0, "message": "cancelled"})
    return True


def _last_line(job_dir: Path) -> str:
    try:
        lines = (job_dir / "job.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "the job ended unexpectedly"
    return lines[-1] if lines else "the job ended unexpectedly"


# --- inside the job process -----------------------------------------------------------------------------


def _scenario(request: WhatIfRequest) -> Any:
    from roadtwin.sim.scenario import builtin_scenario, format_time, load_scenario, parse_time

    base = load_scenario(builtin_scenario("yizhuang_morning_peak"))
    data = base.model_dump(mode="json")
    begin = parse_time(request.begin)
    end = begin + 60.0 * request.minutes
    data.update(
        name="whatif-baseline" if request == request.baseline() else "whatif",
        begin=format_time(begin),
        end=format_time(end),
        seed=request.seed,
        weather={"condition": request.weather},
    )
    mix = dict(data["vehicle_mix"])
    av = min(max(float(request.av_share), 0.0), 0.9)
    mix["car"] = round(1.0 - mix["bus"] - mix["truck"] - av, 6)
    mix["av"] = av
    data["vehicle_mix"] = mix
    data["incidents"] = []
    if request.incident_edge:
        data["incidents"] = [
            {
                "edge": request.incident_edge,
                "lanes": [_leftmost_lane(request.incident_edge)],
                "begin": format_time(begin),
                "end": format_time(end),
                "description": "what-if: a lane blocked",
            }
        ]
    return type(base).model_validate(data)


_NET: list[Path] = []


def _leftmost_lane(edge: str) -> int:
    from roadtwin.maps.network import load_net

    net = load_net(_NET[0])
    return len(net.getEdge(edge).getLanes()) - 1


def _run(request: WhatIfRequest, *, workspace: Path, report: Any) -> dict[str, Any]:
    from roadtwin.agents.base import make_controller
    from roadtwin.agents.combined import CombinedControl
    from roadtwin.agents.routing import make_router
    from roadtwin.sim.run import run_scenario
    from roadtwin.workspace import Workspace

    signals = make_controller(request.controller)
    router = make_router(request.routing, penetration=float(request.penetration), seed=request.seed)
    controller: Any = None
    if request.controller != "fixed" or router.label != "none":
        controller = CombinedControl(signals, router)
    result = run_scenario(
        _scenario(request),
        workspace=Workspace.at(workspace),
        controller=controller,
        progress=report,
        report=False,
    )
    return {"run_id": result.run_dir.name, "metrics": result.metrics.as_dict()}


def _main(job_dir: Path, workspace: Path) -> int:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    request = WhatIfRequest(**read_json(job_dir / "request.json"))
    baseline_file = (
        _jobs_dir(workspace)
        / "baselines"
        / f"{request.begin.replace(':', '')}_{request.minutes}_{request.seed}.json"
    )
    baseline = read_json(baseline_file)
    if baseline and not (workspace / "runs" / str(baseline.get("run_id")) / "metrics.json").is_file():
        baseline = {}
    steps = [("what-if", request)] + (
        [] if baseline or request == request.baseline() else [("baseline", request.baseline())]
    )
    last = [0.0]

    def reporter(index: int, label: str) -> Any:
        def report(t: float, end: float, running: int) -> None:
            now = time.monotonic()
            if now - last[0] < 0.3:
                return
            last[0] = now
            begin = end - 60.0 * request.minutes
            part = min(max((t - begin) / max(end - begin, 1.0), 0.0), 1.0)
            _write_json(
                job_dir / "progress.json",
                {
                    "state": "running",
                    "fraction": (index + part) / len(steps),
                    "message": f"{label}: {int(part * 100)} % of the window, {running} vehicles on the road",
                },
            )

        return report

    try:
        from roadtwin.maps.build import network_for
        from roadtwin.workspace import Workspace

        _NET.append(network_for(workspace=Workspace.at(workspace), name="yizhuang"))
        results: dict[str, Any] = {}
        for index, (label, req) in enumerate(steps):
            results[label] = _run(req, workspace=workspace, report=reporter(index, label))
        if "baseline" in results:
            baseline = results["baseline"]
            baseline_file.parent.mkdir(parents=True, exist_ok=True)
            _write_json(baseline_file, baseline)
        elif request == request.baseline():
            baseline = results["what-if"]
        results["baseline"] = baseline
        _write_json(job_dir / "result.json", {"request": asdict(request), **results})
        _write_json(job_dir / "progress.json", {"state": "done", "fraction": 1.0, "message": "done"})
        return 0
    except KeyboardInterrupt:
        _write_json(
            job_dir / "progress.json", {"state": "cancelled", "fraction": 0.0, "message": "cancelled"}
        )
        return 130
    except Exception as exc:
        message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        _write_json(job_dir / "progress.json", {"state": "failed", "fraction": 0.0, "message": message})
        raise


if __name__ == "__main__":  # pragma: no cover - runs in the job's own process
    sys.exit(_main(Path(sys.argv[1]), Path(sys.argv[2])))
