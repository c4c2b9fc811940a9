"""Simulation speed: SUMO alone vs RoadTwin on libsumo vs RoadTwin on TraCI, side by side in one run.

The zone's peak hour (07:30-08:30 of the built-in morning peak), the same generated inputs and the same
outputs (tripinfo, summary, statistics, 5-minute edge data) for all three:

- **SUMO alone**: the ``sumo`` binary run directly, no Python in the loop (the limit);
- **libsumo alone**: SUMO's same command line started in libsumo from a bare Python and run to the end in one
  call (what the library itself costs, with nothing of RoadTwin's);
- **RoadTwin libsumo**: ``roadtwin.sim.run.simulate`` (what ``roadtwin sim run`` does) on libsumo;
- **RoadTwin TraCI**: the same over a TraCI socket.

Every run is a fresh process (as ``roadtwin sim run`` is), Python's start and imports included, and the
modes take turns so that the machine's drift hits them alike.

Goal: RoadTwin with libsumo within 1.2x of SUMO alone.

    python benchmarks/sim_speed.py [--repeat 3] [--begin 07:30] [--end 08:30]
    python benchmarks/sim_speed.py --instructions [--begin 07:45 --end 07:50]

Wall and CPU times on a shared virtual machine drift by tens of percent from run to run.
``--instructions`` counts CPU instructions under valgrind's callgrind instead, which is exact and repeatable:
for each mode, a full run minus a run that loads the same inputs and stops after one second, so the
difference is the simulation's own cost (SUMO's binary is stripped, so functions cannot be singled out).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (median reported)")
    parser.add_argument("--begin", default="07:30")
    parser.add_argument("--end", default="08:30")
    parser.add_argument("--workspace", type=Path, default=Path("roadtwin-data"))
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions with callgrind (use a short window)"
    )
    args = parser.parse_args(argv)
    if args.instructions:
        return _instructions(args)

    from roadtwin.maps import network_for
    from roadtwin.sim.inputs import prepare_inputs
    from roadtwin.sim.metrics import read_tripinfo
    from roadtwin.sim.run import OUTPUTS, sumo_command
    from roadtwin.sim.scenario import Scenario, builtin_scenario, load_scenario
    from roadtwin.workspace import Workspace

    ws = Workspace.at(args.workspace)
    net = network_for(workspace=ws, name="yizhuang")
    base = load_scenario(builtin_scenario("yizhuang_morning_peak"))
    sc = Scenario.model_validate({**base.model_dump(mode="json"), "begin": args.begin, "end": args.end})

    with tempfile.TemporaryDirectory(prefix="sim_speed-") as tmp:
        root = Path(tmp)
        inputs = prepare_inputs(sc, net_file=net, out_dir=root / "inputs")
        pickled = root / "inputs.pickle"
        pickled.write_bytes(pickle.dumps(inputs))
        sim_s = inputs.end - inputs.begin
        print(
            f"scenario {sc.name} {args.begin}-{args.end}: {inputs.n_vehicles} vehicles, "
            f"{inputs.n_persons} persons, network {net.name}; {args.repeat} runs per mode, "
            "each a fresh process",
            flush=True,
        )

        def children_cpu() -> float:
            # Finished child processes (sumo, python and TraCI's sumo under it): user + system.
            kids = resource.getrusage(resource.RUSAGE_CHILDREN)
            return kids.ru_utime + kids.ru_stime

        def command(mode: str, out: Path) -> list[str]:
            if mode == SUMO_ALONE:
                return sumo_command(inputs, out_dir=out)
            if mode == LIBSUMO_ALONE:
                return [sys.executable, "-c", _BARE_LIBSUMO_RUN, json.dumps(sumo_command(inputs, out_dir=out)),
                        str(inputs.end)]  # fmt: skip
            backend = "libsumo" if mode == ROADTWIN_LIBSUMO else "traci"
            return [sys.executable, "-c", _LIBSUMO_RUN, str(pickled), str(out), backend]

        walls: dict[str, list[float]] = {name: [] for name in MODES}
        cpus: dict[str, list[float]] = {name: [] for name in MODES}
        delays: dict[str, float] = {}
        for rep in range(args.repeat):
            for i, name in enumerate(MODES):  # interleaved: machine noise hits every mode
                out = root / f"{rep}-{i}"
                out.mkdir(parents=True)
                c0, t0 = children_cpu(), time.perf_counter()
                subprocess.run(
                    command(name, out), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                walls[name].append(time.perf_counter() - t0)
                cpus[name].append(children_cpu() - c0)
                for n in OUTPUTS:  # the sumo binary and bare libsumo leave SUMO's names as they are
                    if (out / f"{n}.tmp.xml").is_file():
                        (out / f"{n}.tmp.xml").rename(out / f"{n}.xml")
                veh, _ = read_tripinfo(out / "tripinfo.xml")
                delays[name] = float(veh["timeLoss"].mean())
                print(
                    f"  run {rep + 1}: {name:<28} wall {walls[name][-1]:7.2f} s  cpu {cpus[name][-1]:7.2f} s",
                    flush=True,
                )

    load = os.getloadavg()[0]
    print(
        f"\n1-min load average at the end: {load:.2f} on {os.cpu_count()} cores "
        "(wall times are only comparable on a quiet machine)"
    )
    limit_wall = statistics.median(walls[SUMO_ALONE])
    limit_cpu = statistics.median(cpus[SUMO_ALONE])
    header = (
        f"| {'mode':<28} | {'wall (s), median':>16} | {'real-time factor':>16} | {'wall vs SUMO':>12} "
        f"| {'CPU (s), median':>15} | {'CPU vs SUMO':>11} | {'mean delay (s)':>14} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name in MODES:
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"| {name:<28} | {w:>16.2f} | {sim_s / w:>15.0f}x | {w / limit_wall:>11.2f}x "
            f"| {c:>15.2f} | {c / limit_cpu:>10.2f}x | {delays[name]:>14.2f} |"
        )
    ratio = statistics.median(walls[ROADTWIN_LIBSUMO]) / limit_wall
    verdict = "met" if ratio <= 1.2 else "NOT met"
    print(
        f"\ngoal: RoadTwin libsumo within 1.20x of SUMO alone -> {ratio:.2f}x (median wall of interleaved "
        f"runs): {verdict}"
    )
    return 0


SUMO_ALONE = "SUMO alone (sumo binary)"
LIBSUMO_ALONE = "libsumo alone (no RoadTwin)"
ROADTWIN_LIBSUMO = "RoadTwin, libsumo"
ROADTWIN_TRACI = "RoadTwin, TraCI"
MODES = (SUMO_ALONE, LIBSUMO_ALONE, ROADTWIN_LIBSUMO, ROADTWIN_TRACI)

#: The library alone: SUMO's own command line, started in libsumo and run to the end in one call.
_BARE_LIBSUMO_RUN = """
import json, sys
import sumo  # sets SUMO_HOME first
import libsumo
libsumo.start(json.loads(sys.argv[1]))
libsumo.simulationStep(float(sys.argv[2]))
libsumo.close()
"""

_LIBSUMO_RUN = """
import pickle, sys
from pathlib import Path
from roadtwin.sim.run import simulate
inputs = pickle.loads(Path(sys.argv[1]).read_bytes())
simulate(inputs, out_dir=Path(sys.argv[2]), backend=sys.argv[3] if len(sys.argv) > 3 else "libsumo")
"""


def _callgrind(cmd: list[str], out: Path) -> int:
    """Run ``cmd`` under callgrind; return the instructions it executed."""
    import shutil

    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def _instructions(args: argparse.Namespace) -> int:
    import dataclasses

    from roadtwin.maps import network_for
    from roadtwin.sim.inputs import prepare_inputs
    from roadtwin.sim.run import sumo_command
    from roadtwin.sim.scenario import Scenario, builtin_scenario, load_scenario
    from roadtwin.workspace import Workspace

    ws = Workspace.at(args.workspace)
    base = load_scenario(builtin_scenario("yizhuang_morning_peak"))
    sc = Scenario.model_validate({**base.model_dump(mode="json"), "begin": args.begin, "end": args.end})
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="sim_speed-") as tmp:
        root = Path(tmp)
        full = prepare_inputs(
            sc, net_file=network_for(workspace=ws, name="yizhuang"), out_dir=root / "inputs"
        )
        load_only = dataclasses.replace(full, end=full.begin + 1)
        print(f"counting instructions for {args.begin}-{args.end} ({full.n_vehicles} vehicles); minutes each")
        for label, inputs in (("full", full), ("load only", load_only)):
            tag = label.replace(" ", "-")
            for mode in ("SUMO alone (sumo binary)", "RoadTwin, libsumo"):
                out = (
                    root / f"{tag}-{'binary' if mode.startswith('SUMO') else 'libsumo'}"
                )  # no commas: SUMO lists
                out.mkdir()
                if mode.startswith("SUMO"):
                    cmd = sumo_command(inputs, out_dir=out)
                else:
                    pickled = root / f"{tag}.pickle"
                    pickled.write_bytes(pickle.dumps(inputs))
                    cmd = [sys.executable, "-c", _LIBSUMO_RUN, str(pickled), str(out)]
                counts.setdefault(mode, {})[label] = _callgrind(cmd, out / "callgrind.out")
                print(f"  {mode:<26} {label:<9} {counts[mode][label] / 1e9:8.3f} G instructions", flush=True)
    sims = {mode: c["full"] - c["load only"] for mode, c in counts.items()}
    limit = sims["SUMO alone (sumo binary)"]
    print(f"\n| {'mode':<26} | full run (G) | load only (G) | simulation (G) | vs SUMO alone |")
    print("|----------------------------|--------------|---------------|----------------|---------------|")
    for mode, c in counts.items():
        print(
            f"| {mode:<26} | {c['full'] / 1e9:>12.3f} | {c['load only'] / 1e9:>13.3f} "
            f"| {sims[mode] / 1e9:>14.3f} | {sims[mode] / limit:>12.3f}x |"
        )
    ratio = sims["RoadTwin, libsumo"] / limit
    verdict = "met" if ratio <= 1.2 else "NOT met"
    print(f"\ngoal: RoadTwin libsumo within 1.20x of SUMO alone -> {ratio:.3f}x in instructions: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
