"""One interface for every signal controller, and a registry of them by name.

A :class:`SignalController` satisfies :class:`roadtwin.sim.control.SignalControl`, so any controller
runs in any run (``roadtwin.sim.run.run_scenario`` / ``run_inputs``). Controllers are named by a spec
string: ``fixed``, ``webster``, ``actuated``, ``max-pressure``, or ``rl:PATH`` for a trained policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from roadtwin.errors import ConfigError

if TYPE_CHECKING:
    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.inputs import SimInputs

__all__ = [
    "CONTROLLERS",
    "Controller",
    "SignalController",
    "check_controller",
    "controller_names",
    "make_controller",
    "register_controller",
    "short_spec",
]

C = TypeVar("C", bound="type[SignalController]")

#: Registered controller classes by name.
CONTROLLERS: dict[str, type[SignalController]] = {}


class Controller:
    """What every controller (signal or routing) has: a name, options, and the run's life cycle.

    It satisfies :class:`roadtwin.sim.control.SignalControl`, the protocol a run drives.

    Parameters
    ----------
    **options
        The controller's options, kept in ``options`` and saved into each run's ``config.yaml``.
    """

    name: ClassVar[str] = ""
    decision_interval_s: float | None = None

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = dict(options)

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Return the inputs to simulate; by default unchanged."""
        return inputs

    def start(self, session: SumoSession) -> None:
        """Called once SUMO runs, before the first step."""

    def act(self, session: SumoSession) -> None:
        """Called every ``decision_interval_s`` simulated seconds."""

    def close(self) -> None:
        """Release what :meth:`start` took."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


class SignalController(Controller):
    """Base class of signal controllers.

    Subclasses set ``name`` and override what they need: :meth:`prepare` to change the signal programs
    SUMO loads (fixed-time, Webster, actuated), or :meth:`start` / :meth:`act` with a
    ``decision_interval_s`` to drive the signals while SUMO runs (max-pressure, RL).

    Parameters
    ----------
    **options
        Controller options (typed keyword arguments in subclasses); kept in ``options`` and saved into
        each run's ``config.yaml``.
    """

    name: ClassVar[str] = ""

    @classmethod
    def check(cls, **options: Any) -> None:
        """Raise what building the controller with ``options`` would raise, without keeping it. By
        default it is built and dropped; a controller whose construction loads something heavy (a
        policy: torch) overrides this with a light check."""
        cls(**options)


def register_controller(cls: C) -> C:
    """Class decorator: register a controller under its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name")
    CONTROLLERS[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Importing the modules registers them; kept lazy so `import roadtwin.agents` stays light.
    import importlib

    for module in ("fixed", "webster", "actuated", "max_pressure", "rl"):
        try:
            importlib.import_module(f"roadtwin.agents.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"roadtwin.agents.{module}":
                raise


def controller_names() -> list[str]:
    """Names of the registered controllers."""
    _load_builtin()
    return sorted(CONTROLLERS)


def short_spec(spec: str) -> str:
    """A controller spec as tables show it: ``NAME:PATH`` (``rl:``, ``rl-routing:``) by its run folder
    (and model file); other specs as they are."""
    name, sep, arg = spec.partition(":")
    if not sep or "/" not in arg:
        return spec
    parts = Path(arg).parts
    keep = 1 if not arg.endswith(".zip") else 3 if parts[-2] in ("best", "checkpoints") else 2
    return f"{name}:{'/'.join(parts[-keep:])}"


def _resolve(spec: str, options: dict[str, Any]) -> tuple[type[SignalController], dict[str, Any]]:
    _load_builtin()
    name, _, arg = spec.partition(":")
    cls = CONTROLLERS.get(name)
    if cls is None:
        raise ConfigError(
            path=None, field="controller", expected=f"one of {', '.join(sorted(CONTROLLERS))}", got=spec
        )
    return cls, ({**options, "source": arg} if arg else options)


def make_controller(spec: str, **options: Any) -> SignalController:
    """Build a controller from its spec: ``NAME`` or ``NAME:ARG`` (e.g. ``rl:runs/my-training``).

    The part after ``:`` is passed as the ``source`` option (a policy file or training run folder).
    """
    cls, options = _resolve(spec, options)
    return cls(**options)


def check_controller(spec: str, **options: Any) -> None:
    """Raise what :func:`make_controller` would raise for ``spec``, without loading a policy (for a
    process that forks workers afterwards: a child forked from a process that has run torch hangs)."""
    cls, options = _resolve(spec, options)
    cls.check(**options)
