"""Webster control: cycle length and green splits from the route flows, by SUMO's ``tlsCycleAdaptation.py``.

Before SUMO starts, the tool counts each signal's movement flows over the hour from the window's begin
(scaled up when the routes end earlier), computes Webster's optimal cycle and splits the greens in
proportion to the critical flows. The new programs (id ``webster``) go into ``webster.add.xml``, loaded as
an additional file; SUMO makes the program loaded last a signal's active one, so they replace the
network's own. Signals without traffic keep their programs, and so do signals whose link indices the
tool cannot map to their connections (shared or missing indices, as in RESCO's ingolstadt21).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from roadtwin.agents.base import SignalController, register_controller
from roadtwin.errors import ConfigError

if TYPE_CHECKING:
    from roadtwin.sim.inputs import SimInputs

__all__ = ["Webster"]


@register_controller
class Webster(SignalController):
    """Webster's fixed-time timing for the run's own demand, via ``tlsCycleAdaptation.py``.

    Parameters
    ----------
    yellow_time
        Yellow time (s) of the new programs; ``None`` keeps the network's longest yellow phase.
    min_cycle, max_cycle
        Bounds on the cycle length (s).
    min_green
        Shortest green (s).
    lost_time
        Start-up and clearance time lost per phase (s).
    saturation_headway
        Seconds between discharging vehicles (3600 / saturation flow per lane).
    existing_cycle
        Keep each signal's own cycle length and only re-split its greens.
    program_id
        SUMO program id of the new programs.
    """

    name: ClassVar[str] = "webster"

    def __init__(
        self,
        *,
        yellow_time: float | None = None,
        min_cycle: float = 30.0,
        max_cycle: float = 120.0,
        min_green: float = 5.0,
        lost_time: float = 4.0,
        saturation_headway: float = 2.0,
        existing_cycle: bool = False,
        program_id: str = "webster",
    ) -> None:
        if not 0 < min_cycle <= max_cycle:
            raise ConfigError(
                path=None,
                field="max_cycle",
                expected="0 < min_cycle <= max_cycle",
                got=(min_cycle, max_cycle),
            )
        super().__init__(
            yellow_time=yellow_time,
            min_cycle=min_cycle,
            max_cycle=max_cycle,
            min_green=min_green,
            lost_time=lost_time,
            saturation_headway=saturation_headway,
            existing_cycle=existing_cycle,
            program_id=program_id,
        )

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Write ``work_dir/webster.add.xml`` and return the inputs with it loaded last."""
        import dataclasses

        from roadtwin.toolchain import run_tool, tool

        opts = self.options
        yellow = opts["yellow_time"]
        if yellow is None:
            yellow = _network_yellow(inputs.net_file)
        work_dir.mkdir(parents=True, exist_ok=True)
        out = work_dir / "webster.add.xml"
        tmp = work_dir / "webster.tmp.add.xml"
        routes = [
            str(_routed(p, inputs=inputs, work_dir=work_dir).absolute())
            for p in inputs.route_files
            if _has_vehicles(p)
        ]
        run_tool(
            [
                tool("tlsCycleAdaptation.py"),
                "-n", inputs.net_file, "-r", ",".join(routes), "-o", tmp,
                "-b", f"{inputs.begin:g}", "-y", f"{yellow:g}",
                "-g", f"{opts['min_green']:g}", "-l", f"{opts['lost_time']:g}",
                "--min-cycle", f"{opts['min_cycle']:g}", "--max-cycle", f"{opts['max_cycle']:g}",
                "-H", f"{opts['saturation_headway']:g}", "-p", opts["program_id"],
                *(["--existing-cycle"] if opts["existing_cycle"] else []),
                *(["--skip", ",".join(skipped)] if (skipped := _unsupported_signals(inputs.net_file)) else []),
            ],
            what="tlsCycleAdaptation.py (Webster)",
            cwd=work_dir,
        )  # fmt: skip
        tmp.replace(out)
        return dataclasses.replace(inputs, additional_files=(*inputs.additional_files, out))


def _network_yellow(net_file: Path) -> float:
    """The longest yellow phase of the network's programs (3 s when it has none)."""
    from roadtwin.agents._programs import is_yellow, read_programs

    durations = [
        float(phase.duration)
        for programs in read_programs(net_file).values()
        for program in programs
        for phase in program.getPhases()
        if is_yellow(phase.state) and not any(c in "Gg" for c in phase.state)
    ]
    return max(durations, default=3.0)


def _routed(path: Path, *, inputs: SimInputs, work_dir: Path) -> Path:
    """``path`` itself when its vehicles have routes; else its trips routed by ``duarouter`` (RESCO's
    files are trips, and the tool counts flows along routes). Only the hour the tool reads is routed."""
    from roadtwin.toolchain import binary, run_tool

    with open(path, encoding="utf-8") as fh:
        head = fh.read(1 << 16)
    if "<trip" not in head and "<flow" not in head:
        return path
    out = work_dir / f"webster-{path.name.split('.')[0]}.rou.xml"
    run_tool(
        [
            binary("duarouter"), "-n", inputs.net_file, "-r", path, "-o", out,
            "-b", f"{inputs.begin:g}", "-e", f"{inputs.begin + 3600:g}",
            "--ignore-errors", "true", "--no-step-log", "true", "--no-warnings", "true",
            "--write-trips", "false", "--seed", str(inputs.seed),
        ],
        what="duarouter (Webster flows)",
        cwd=work_dir,
    )  # fmt: skip
    return out


def _unsupported_signals(net_file: Path) -> list[str]:
    """Signals ``tlsCycleAdaptation.py`` cannot time: their link indices are not exactly 0..n-1 over
    their connections (shared or missing indices; the tool reads the n-th connection as link n, and
    fails or counts the wrong flows). They keep their own programs."""
    import sumolib

    net = sumolib.net.readNet(str(net_file), withPrograms=True)
    out = []
    for tl in net.getTrafficLights():
        indices = sorted(c[2] for c in tl.getConnections())
        if indices != list(range(len(indices))):
            out.append(tl.getID())
    return sorted(out)


def _has_vehicles(path: Path) -> bool:
    """Whether a route file may hold vehicles (walker-only files are left out of the flow count)."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(1 << 16)
    return "<vehicle" in head or "<person" not in head
