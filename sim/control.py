"""What a run needs from a signal controller.

Controllers live in ``roadtwin.agents`` (fixed-time, Webster, actuated, max-pressure, RL); ``sim`` only
defines the protocol so that data keeps flowing one way (``sim`` never imports ``agents``). A controller
may rewrite the run's inputs before SUMO starts (new signal programs) and/or act on the running
simulation every ``decision_interval_s`` seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.inputs import SimInputs

__all__ = ["SignalControl"]


@runtime_checkable
class SignalControl(Protocol):
    """A signal controller as a run sees it."""

    #: Short name used in run ids and tables (``fixed``, ``webster``, ``max-pressure`` ...).
    name: str
    #: Seconds between calls to :meth:`act`; ``None`` for controllers that only change programs.
    decision_interval_s: float | None

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Return the inputs to simulate (e.g. with extra signal programs); may write into ``work_dir``."""
        ...

    def start(self, session: SumoSession) -> None:
        """Called once SUMO runs, before the first step."""
        ...

    def act(self, session: SumoSession) -> None:
        """Called every ``decision_interval_s`` simulated seconds."""
        ...

    def close(self) -> None:
        """Release what :meth:`start` took."""
        ...
