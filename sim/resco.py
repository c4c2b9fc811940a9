"""The RESCO benchmark scenarios (Ault & Sharon, NeurIPS 2021), as shipped in the ``sumo-rl`` wheel.

RESCO evaluates a one-hour window, decides every 10 s with 3 s yellow, no warm-up, teleporting off and a
new seed each episode (REFERENCE.md). ``sumo-rl`` is the ``bench`` extra; its package is located, not
imported (importing it needs ``SUMO_HOME``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadtwin.errors import ConfigError, MissingExtraError

__all__ = ["RESCO_SCENARIOS", "RescoScenario", "resco_dir", "resco_env_kwargs", "resco_files"]


@dataclass(frozen=True)
class RescoScenario:
    """One RESCO scenario: its files' folder name, window and size (REFERENCE.md)."""

    name: str
    begin: int
    end: int
    signals: int
    vehicles: int
    #: RESCO's decision interval and yellow time for this scenario (s).
    delta_time: int = 10
    yellow_time: int = 3


#: The six city scenarios of RESCO's table, with the vehicles that enter in the window.
RESCO_SCENARIOS: dict[str, RescoScenario] = {
    s.name: s
    for s in (
        RescoScenario("cologne1", 25200, 28800, 1, 2015),
        RescoScenario("cologne3", 25200, 28800, 3, 2856),
        RescoScenario("cologne8", 25200, 28800, 8, 2046),
        RescoScenario("ingolstadt1", 57600, 61200, 1, 1716),
        RescoScenario("ingolstadt7", 57600, 61200, 7, 3031),
        RescoScenario("ingolstadt21", 57600, 61200, 21, 4281),
    )
}


def resco_dir() -> Path:
    """The ``nets/RESCO`` folder of the installed ``sumo-rl`` wheel."""
    spec = importlib.util.find_spec("sumo_rl")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(package="sumo-rl", extra="bench")
    folder = Path(next(iter(spec.submodule_search_locations))) / "nets" / "RESCO"
    if not folder.is_dir():  # pragma: no cover - a broken install
        raise MissingExtraError(package="sumo-rl (with its RESCO networks)", extra="bench")
    return folder


def resco_files(name: str) -> tuple[Path, Path, int, int]:
    """Return ``(net_file, route_file, begin, end)`` of the RESCO scenario ``name``.

    Raises
    ------
    ConfigError
        ``name`` is not one of :data:`RESCO_SCENARIOS`.
    MissingExtraError
        ``sumo-rl`` (the ``bench`` extra) is not installed.
    """
    if name not in RESCO_SCENARIOS:
        raise ConfigError(
            path=None, field="scenario", expected=f"one of {', '.join(RESCO_SCENARIOS)}", got=name
        )
    scenario = RESCO_SCENARIOS[name]
    folder = resco_dir() / name
    return folder / f"{name}.net.xml", folder / f"{name}.rou.xml", scenario.begin, scenario.end


def resco_env_kwargs(name: str) -> dict[str, Any]:
    """Keyword arguments that set a signal environment up as RESCO does (files, window, 10 s / 3 s)."""
    net, routes, begin, end = resco_files(name)
    scenario = RESCO_SCENARIOS[name]
    return {
        "net_file": net,
        "route_files": routes,
        "begin": begin,
        "end": end,
        "delta_time": scenario.delta_time,
        "yellow_time": scenario.yellow_time,
        "time_to_teleport": -1,
    }
