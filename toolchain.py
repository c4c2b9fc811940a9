"""SUMO's binaries and tools, found through the ``eclipse-sumo`` wheel and run as child processes.

``import sumo`` must come before ``libsumo``, ``sumolib`` or ``traci``: it sets ``SUMO_HOME`` and
``PROJ_LIB`` (see GOTCHAS). Every module that touches SUMO calls :func:`ensure_sumo` first. Child
processes get ``PR_SET_PDEATHSIG`` so that a killed RoadTwin never leaves a stray SUMO behind.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from roadtwin.errors import SimulationError

__all__ = ["binary", "ensure_sumo", "import_libsumo", "popen", "run_tool", "sumo_home", "tool"]

_PR_SET_PDEATHSIG = 1


@functools.cache
def ensure_sumo() -> Path:
    """Point ``SUMO_HOME`` and ``PROJ_LIB`` at the installed ``eclipse-sumo`` wheel; return ``SUMO_HOME``."""
    import sumo

    # Always the pinned wheel's home, whatever ran first: `import libsumo` alone (or a user's own
    # SUMO_HOME for another SUMO version) would point at a folder without tools/ or with other binaries.
    home = Path(sumo.SUMO_HOME)
    os.environ["SUMO_HOME"] = str(home)
    if not os.environ.get("PROJ_LIB"):
        os.environ["PROJ_LIB"] = str(home / "data" / "proj")
    tools = str(home / "tools")
    if tools not in sys.path:
        sys.path.append(tools)
    # libsumo warns on every import that pyarrow differs from its bundled arrow; reading works (GOTCHAS).
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    return home


def import_libsumo():  # type: ignore[no-untyped-def]
    """Import ``libsumo`` after :func:`ensure_sumo`, without its import-time chatter.

    libsumo prints a warning when pyarrow's version differs from its bundled Arrow; reading its Parquet
    output works in both import orders (GOTCHAS), so the line only confuses users.
    """
    ensure_sumo()
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import libsumo
    return libsumo


def sumo_home() -> Path:
    """Return ``SUMO_HOME`` (the installed wheel's data folder, with ``bin/`` and ``tools/``)."""
    return ensure_sumo()


def binary(name: str) -> str:
    """Return the path of a SUMO binary (``sumo``, ``netconvert``, ``duarouter``, ...)."""
    path = ensure_sumo() / "bin" / name
    if not path.exists():  # pragma: no cover - a broken install
        raise SimulationError(f"SUMO binary {name!r} not found under {path.parent}: reinstall eclipse-sumo")
    return str(path)


def tool(relative: str) -> Path:
    """Return the path of a script under ``SUMO_HOME/tools`` (``randomTrips.py``, ``routeSampler.py``)."""
    path = ensure_sumo() / "tools" / relative
    if not path.exists():  # pragma: no cover - a broken install
        raise SimulationError(f"SUMO tool {relative!r} not found under {path.parent}")
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def popen(args: Sequence[str], **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def,type-arg]
    """Start a child process that is killed when this process dies, even by ``kill -9``."""
    ensure_sumo()
    return subprocess.Popen(list(args), preexec_fn=_die_with_parent, **kwargs)


def run_tool(
    args: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a SUMO binary or a Python tool to completion; raise :class:`SimulationError` on failure.

    ``args[0]`` is a binary path or a ``.py`` tool (run with this interpreter). With ``cwd``, path
    arguments (``os.PathLike``) are made absolute first, so that a path relative to this process's
    folder still names the same file for the tool. The error message keeps the tool's last error line,
    which is usually the one that explains the failure.
    """
    cmd = [
        str(Path(a).absolute()) if cwd is not None and isinstance(a, os.PathLike) else str(a) for a in args
    ]
    if cmd[0].endswith(".py"):
        cmd.insert(0, sys.executable)
    proc = popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise SimulationError(f"{what} failed (exit {proc.returncode}): {_last_error(err or out)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _last_error(text: str) -> str:
    """The line that explains a failure: SUMO's last ``Error:`` line, else any error-looking line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    sumo_errors = [ln for ln in lines if ln.startswith("Error")]
    errors = [ln for ln in lines if "error" in ln.lower() and not ln.startswith("Quitting")]
    return (sumo_errors or errors or lines or ["no output"])[-1][:300]
