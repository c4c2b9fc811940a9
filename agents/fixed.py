"""Fixed-time control: the network's own signal programs, unchanged."""

from __future__ import annotations

from typing import ClassVar

from roadtwin.agents.base import SignalController, register_controller

__all__ = ["FixedTime"]


@register_controller
class FixedTime(SignalController):
    """The network's own (usually fixed-time) programs: the baseline every controller is compared with.

    Changes nothing and acts never; SUMO runs each signal's program from the network file.
    """

    name: ClassVar[str] = "fixed"

    def __init__(self) -> None:
        super().__init__()
