"""A signal controller and a routing controller in one run.

:class:`CombinedControl` satisfies :class:`roadtwin.sim.control.SignalControl`: a run (and
:class:`~roadtwin.agents.evaluate.QueueProbe`) sees one controller. It ticks at the shorter of the two
decision intervals and calls each part when its own interval is due. Its name is the signal controller's,
then ``+``, the router's name and the penetration in percent (``max-pressure+guidance30``); with no
routing it is the signal controller's own name and options, so plain runs keep their ids and configs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roadtwin.agents.base import SignalController
    from roadtwin.agents.routing import RoutingController
    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.inputs import SimInputs

__all__ = ["CombinedControl"]


class CombinedControl:
    """Runs ``signal`` and ``router`` together.

    Parameters
    ----------
    signal
        The signal controller.
    router
        The routing controller.
    """

    def __init__(self, signal: SignalController, router: RoutingController) -> None:
        self.signal = signal
        self.router = router
        routed = router.label != "none"
        #: Name in run ids: ``max-pressure+guidance30`` (safe in paths and URLs); the signal's alone
        #: without routing.
        self.name = f"{signal.name}+{router.name}{router.penetration * 100:g}" if routed else signal.name
        self.options: dict[str, Any] = dict(signal.options)
        if routed:
            self.options["routing"] = {"name": router.name, **router.options}
        intervals = [i for i in (signal.decision_interval_s, router.decision_interval_s) if i]
        self.decision_interval_s: float | None = float(min(intervals)) if intervals else None
        self._due = [math.inf, math.inf]

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Let the signal controller, then the router, prepare the inputs."""
        inputs = self.signal.prepare(inputs, work_dir=work_dir)
        return self.router.prepare(inputs, work_dir=work_dir)

    def start(self, session: SumoSession) -> None:
        """Start both."""
        self.signal.start(session)
        self.router.start(session)
        now = session.time
        self._due = [
            now + part.decision_interval_s if part.decision_interval_s else math.inf
            for part in (self.signal, self.router)
        ]

    def act(self, session: SumoSession) -> None:
        """Call each part whose interval is due."""
        now = session.time
        for k, part in enumerate((self.signal, self.router)):
            interval = part.decision_interval_s
            if interval and now + 1e-6 >= self._due[k]:
                part.act(session)
                self._due[k] += interval * max(1, math.floor((now - self._due[k]) / interval) + 1)

    def close(self) -> None:
        """Close both (the router first)."""
        try:
            self.router.close()
        finally:
            self.signal.close()
