"""Running ``netconvert``: a failure on a user's file is that file's fault, on our own inputs a bug."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from roadtwin.errors import NetworkError, SimulationError
from roadtwin.toolchain import binary, popen

__all__ = ["run_netconvert"]


def run_netconvert(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    user_file: Path | None = None,
    expected: str = "a file that netconvert can import",
) -> subprocess.CompletedProcess[str]:
    """Run netconvert with ``args`` in ``cwd``; return its output.

    Raises
    ------
    NetworkError
        netconvert failed on ``user_file``; the message keeps netconvert's first error line.
    SimulationError
        netconvert failed on inputs RoadTwin wrote itself.
    """
    cmd = [binary("netconvert"), *(str(a) for a in args)]
    proc = popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        message = _first_error(err + "\n" + out)
        if user_file is not None:
            raise NetworkError(path=user_file, field=None, expected=expected, got=message)
        raise SimulationError(f"netconvert failed (exit {proc.returncode}): {message}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _first_error(text: str) -> str:
    """netconvert's first ``Error:`` line (its last line is only ``Quitting (on error).``)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Error:"):
            return ln.removeprefix("Error:").strip()[:200]
    return (lines or ["no output"])[-1][:200]
