"""The one SUMO backend factory: libsumo by default (in-process, ~10x faster), TraCI on request.

libsumo runs one simulation per process (a second ``start`` silently replaces the first), so parallel
simulations are processes. TraCI starts ``sumo`` as a child that is killed with us (``PR_SET_PDEATHSIG``)
and is also killed on :meth:`SumoSession.close`, so no run ever leaves a stray SUMO behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from roadtwin import toolchain
from roadtwin.errors import ConfigError, SimulationError

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "SumoSession", "start"]

Backend = Literal["libsumo", "traci"]
BACKENDS: tuple[Backend, ...] = ("libsumo", "traci")
DEFAULT_BACKEND: Backend = "libsumo"


@dataclass
class SumoSession:
    """A running simulation.

    ``conn`` exposes the TraCI API (``conn.simulationStep``, ``conn.vehicle``, ``conn.trafficlight`` ...)
    whichever backend runs it: the ``libsumo`` module or a ``traci.Connection``.
    """

    backend: Backend
    conn: Any
    process: subprocess.Popen | None = None  # type: ignore[type-arg]
    error_log: str | None = None
    _closed: bool = field(default=False, repr=False)

    def step(self, until: float = 0.0) -> None:
        """Advance the simulation (to ``until`` seconds if given, else one step)."""
        try:
            self.conn.simulationStep(until)
        except Exception as exc:
            raise _as_simulation_error(exc, self) from exc

    @property
    def time(self) -> float:
        """The simulation time in seconds."""
        return float(self.conn.simulation.getTime())

    def close(self) -> None:
        """End the simulation and make sure no SUMO process is left; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # SUMO may already be gone; cleanup goes on
            self.conn.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SumoSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_simulation_error(
    exc: BaseException, session: SumoSession | None, error_log: str | None = None, output: str = ""
) -> SimulationError:
    """Explain a failure with SUMO's own last error line (from its output or ``--error-log``)."""
    if session is not None:
        error_log = session.error_log
    reason = (
        _last_sumo_error(error_log, output) or (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    )
    if session is not None and session.process is not None and session.process.poll() not in (None, 0):
        return SimulationError(f"SUMO crashed (exit {session.process.returncode}): {reason}")
    return SimulationError(f"SUMO failed: {reason}")


def _last_sumo_error(error_log: str | None, text: str = "") -> str | None:
    lines = [ln.strip() for ln in text.splitlines()]
    if error_log:
        try:
            with open(error_log, encoding="utf-8", errors="replace") as fh:
                lines += [ln.strip() for ln in fh]
        except OSError:
            pass
    errors = [ln for ln in lines if ln.startswith("Error")]
    return errors[-1][:300] if errors else None


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[list[str]]:
    """Capture what in-process SUMO prints on fd 2 (and pass it on); yields a box for the text.

    libsumo honours ``--error-log`` only on the first start in a process, so this is how a later
    start learns SUMO's reason for failing.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    box: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            data = tmp.read()
            if data:
                os.write(2, data)
            box.append(data.decode("utf-8", errors="replace"))


def _connect(traci: Any, *, port: int, proc: subprocess.Popen, timeout: float = 60.0) -> Any:  # type: ignore[type-arg]
    """Connect to SUMO's TraCI port, failing fast when SUMO exits instead of retrying blindly."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SimulationError(f"SUMO exited (code {proc.returncode}) before accepting a connection")
        try:
            conn = traci.connect(port=port, proc=proc, numRetries=0)
        except (OSError, traci.exceptions.TraCIException, traci.exceptions.FatalTraCIError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        if proc.poll() is not None:  # a socket that connected to itself, not to SUMO
            conn.close()
            raise SimulationError(f"SUMO exited (code {proc.returncode}) before accepting a connection")
        return conn


def start(cmd: Sequence[str], *, backend: Backend = DEFAULT_BACKEND, label: str = "default") -> SumoSession:
    """Start SUMO with the command line ``cmd`` (``cmd[0]`` is the ``sumo`` binary) on ``backend``.

    Parameters
    ----------
    cmd
        A ``sumo`` command line, binary first. With ``--error-log FILE`` in it, failures quote SUMO's
        own error line.
    backend
        ``"libsumo"`` (default) or ``"traci"``.
    label
        The TraCI connection label (several TraCI simulations can run side by side).
    """
    toolchain.ensure_sumo()
    args = [str(a) for a in cmd]
    error_log = args[args.index("--error-log") + 1] if "--error-log" in args[:-1] else None
    if backend == "libsumo":
        libsumo = toolchain.import_libsumo()
        try:
            with _native_stderr_captured() as captured:
                libsumo.start(args)
        except Exception as exc:
            with contextlib.suppress(Exception):  # nothing was started
                libsumo.close()
            raise _as_simulation_error(exc, None, error_log, "".join(captured)) from exc
        return SumoSession(backend="libsumo", conn=libsumo, error_log=error_log)
    if backend == "traci":
        import traci
        from sumolib.miscutils import getFreeSocketPort

        port = getFreeSocketPort()
        proc = toolchain.popen([*args, "--remote-port", str(port)], stdout=subprocess.DEVNULL)
        try:
            conn = _connect(traci, port=port, proc=proc)
            # SUMO accepts the connection before it loads its inputs: a first command surfaces load errors.
            conn.getVersion()
        except Exception as exc:
            try:  # SUMO quits by itself after a load error; let it finish writing its error log
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise _as_simulation_error(exc, None, error_log) from exc
        return SumoSession(backend="traci", conn=conn, process=proc, error_log=error_log)
    raise ConfigError(path=None, field="backend", expected=f"one of {', '.join(BACKENDS)}", got=backend)
