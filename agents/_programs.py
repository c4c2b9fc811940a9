"""Reading a network's static signal programs with sumolib (shared by Webster and actuated control)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["is_green", "is_yellow", "read_programs"]


def read_programs(net_file: Path) -> dict[str, list[Any]]:
    """Return every traffic light's programs (sumolib ``Phase`` lists with their program objects).

    Returns
    -------
    dict
        ``{tls_id: [program, ...]}`` where ``program.getPhases()`` lists the phases and ``program._id``,
        ``program._type`` and ``program._offset`` are the program's id, type and offset.
    """
    from roadtwin.toolchain import ensure_sumo

    ensure_sumo()
    import sumolib

    net = sumolib.net.readNet(str(net_file), withPrograms=True)
    return {tls.getID(): list(tls.getPrograms().values()) for tls in net.getTrafficLights()}


def is_yellow(state: str) -> bool:
    """A transition phase (any yellow or red-yellow link)."""
    return any(c in "yYu" for c in state)


def is_green(state: str) -> bool:
    """A green phase: some link has right of way and none shows yellow."""
    return not is_yellow(state) and any(c in "Gg" for c in state)
