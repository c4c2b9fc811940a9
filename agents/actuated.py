"""SUMO's own actuated control: gap-based extension of the network's greens.

Before SUMO starts, every signal's active static program is rewritten as a ``type="actuated"`` program
(id ``actuated``) into ``actuated.add.xml``: each green phase may last from ``min_green`` to ``max_green``
(never shorter than ``min_green``; the original duration is its first value), yellows and all-reds keep
their durations. SUMO places a detector on every incoming lane (``detector-gap`` s of travel upstream of
the stop line) and extends a green while vehicles keep arriving less than ``max-gap`` s apart. SUMO makes
the program loaded last a signal's active one, so these replace the network's own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from xml.sax.saxutils import quoteattr

from roadtwin.agents.base import SignalController, register_controller
from roadtwin.errors import ConfigError

if TYPE_CHECKING:
    from roadtwin.sim.inputs import SimInputs

__all__ = ["Actuated", "write_actuated_programs"]


@register_controller
class Actuated(SignalController):
    """SUMO's gap-based actuated control on the network's own phase sequence.

    Parameters
    ----------
    min_green, max_green
        Bounds of each green phase (s).
    max_gap
        Largest time gap (s) between successive vehicles that still extends a green.
    detector_gap
        Distance of the detectors from the stop line, in seconds of travel at the speed limit.
    program_id
        SUMO program id of the new programs.
    """

    name: ClassVar[str] = "actuated"

    def __init__(
        self,
        *,
        min_green: float = 10.0,
        max_green: float = 50.0,
        max_gap: float = 3.0,
        detector_gap: float = 2.0,
        program_id: str = "actuated",
    ) -> None:
        if not 0 < min_green < max_green:
            raise ConfigError(
                path=None, field="max_green", expected="0 < min_green < max_green", got=(min_green, max_green)
            )
        super().__init__(
            min_green=min_green,
            max_green=max_green,
            max_gap=max_gap,
            detector_gap=detector_gap,
            program_id=program_id,
        )

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Write ``work_dir/actuated.add.xml`` and return the inputs with it loaded last."""
        out = write_actuated_programs(work_dir / "actuated.add.xml", net_file=inputs.net_file, **self.options)
        return dataclasses.replace(inputs, additional_files=(*inputs.additional_files, out))


def write_actuated_programs(
    path: Path,
    *,
    net_file: Path,
    min_green: float = 10.0,
    max_green: float = 50.0,
    max_gap: float = 3.0,
    detector_gap: float = 2.0,
    program_id: str = "actuated",
) -> Path:
    """Write actuated versions of the network's static programs to ``path`` (atomically).

    Signals whose programs are already actuated (or not static) are left alone.
    """
    from roadtwin._io import write_text
    from roadtwin.agents._programs import is_green, read_programs

    lines = ["<additional>"]
    for tls_id, programs in sorted(read_programs(net_file).items()):
        static = [p for p in programs if getattr(p, "_type", "static") == "static"]
        if not static:
            continue
        program = static[0]
        lines.append(
            f'    <tlLogic id={quoteattr(tls_id)} type="actuated" programID={quoteattr(program_id)} '
            f'offset="{float(program._offset):g}">'
        )
        lines.append(f'        <param key="max-gap" value="{max_gap:g}"/>')
        lines.append(f'        <param key="detector-gap" value="{detector_gap:g}"/>')
        lines.append('        <param key="show-detectors" value="false"/>')
        for phase in program.getPhases():
            duration = float(phase.duration)
            if is_green(phase.state):
                start = min(max(duration, min_green), max_green)
                lines.append(
                    f'        <phase duration="{start:g}" minDur="{min_green:g}" maxDur="{max_green:g}" '
                    f'state="{phase.state}"/>'
                )
            else:
                lines.append(f'        <phase duration="{duration:g}" state="{phase.state}"/>')
        lines.append("    </tlLogic>")
    lines.append("</additional>")
    return write_text(path, "\n".join(lines) + "\n")
