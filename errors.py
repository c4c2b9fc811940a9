"""The package's error hierarchy.

A :class:`RoadTwinError` is a user-facing failure: the CLI prints its message as one line and exits
with its ``exit_code``. Anything else escaping the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "ConfigError",
    "InputError",
    "MissingExtraError",
    "NetworkError",
    "RoadTwinError",
    "ScenarioError",
    "SimulationError",
    "require",
]


class RoadTwinError(Exception):
    """Base class of every error RoadTwin raises on purpose."""

    exit_code: int = 1


class InputError(RoadTwinError):
    """Bad user input: names the file, the field and what was expected (exit code 2).

    Parameters
    ----------
    path
        The file (or folder) the bad input came from.
    field
        The field, element or line inside it; ``None`` for the file as a whole.
    expected
        What a valid value looks like.
    got
        The offending value, shown shortened.
    """

    exit_code = 2

    def __init__(
        self,
        *,
        path: str | PathLike[str] | None,
        field: str | None,
        expected: str,
        got: object = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(self._format())

    def _format(self) -> str:
        parts = [p for p in (self.path, self.field) if p]
        where = ": ".join(parts) if parts else "input"
        msg = f"{where}: expected {self.expected}"
        if self.got is not None:
            shown = repr(self.got)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            msg += f", got {shown}"
        # One line, whatever the pieces contain.
        return " ".join(msg.split())


class ConfigError(InputError):
    """An invalid configuration or options file."""


class NetworkError(InputError):
    """A missing or malformed road network or OSM extract."""


class ScenarioError(InputError):
    """An invalid scenario (YAML or its references into the network)."""


class SimulationError(RoadTwinError):
    """SUMO failed, crashed or was interrupted; its process has been cleaned up."""

    exit_code = 1


class MissingExtraError(RoadTwinError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    exit_code = 2

    def __init__(self, *, package: str, extra: str) -> None:
        super().__init__(f'{package} is not installed: install it with pip install "roadtwin[{extra}]"')
        self.package = package
        self.extra = extra


def require(module: str, *, extra: str, package: str | None = None):  # type: ignore[no-untyped-def]
    """Import an optional dependency, or raise :class:`MissingExtraError` naming its extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(package=package or module.split(".")[0], extra=extra) from exc
