"""Simulation speed: SUMO alone vs RoadTwin on libsumo vs RoadTwin on TraCI, side by side in one run.

The zone's peak hour (07:30-08:30 of the built-in morning peak), the same generated inputs and the same
outputs (tripinfo, summary, statistics, 5-minute edge data) for all three:

- **SUMO alone**: the ``sumo`` binary run directly, no Python in the loop (the limit);
- **RoadTwin libsumo**: ``roadtwin.sim.run.simulate`` (what ``roadtwin sim run`` does), in-process;
- **RoadTwin TraCI**: the same over a TraCI socket.

Goal: RoadTwin with libsumo within 1.2x of SUMO alone.

    python benchmarks/sim_speed.py [--repeat 3] [--begin 07:30] [--end 08:30]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

    from roadtwin.maps import network_for
    from roadtwin.sim.inputs import prepare_inputs
    from roadtwin.sim.metrics import read_statistics, read_tripinfo
    from roadtwin.sim.run import simulate, sumo_command
    from roadtwin.sim.scenario import Scenario, builtin_scenario, load_scenario
    from roadtwin.workspace import Workspace

    ws = Workspace.at(args.workspace)
    net = network_for(workspace=ws, name="yizhuang")
    base = load_scenario(builtin_scenario("yizhuang_morning_peak"))
    sc = Scenario.model_validate({**base.model_dump(mode="json"), "begin": args.begin, "end": args.end})

    with tempfile.TemporaryDirectory(prefix="sim_speed-") as tmp:
        root = Path(tmp)
        inputs = prepare_inputs(sc, net_file=net, out_dir=root / "inputs")
        sim_s = inputs.end - inputs.begin
        print(
            f"scenario {sc.name} {args.begin}-{args.end}: {inputs.n_vehicles} vehicles, "
            f"{inputs.n_persons} persons, network {net.name}; {args.repeat} runs per mode",
            flush=True,
        )

        def sumo_alone(out: Path) -> float:
            cmd = sumo_command(inputs, out_dir=out)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - t0

        modes = {
            "SUMO alone (sumo binary)": sumo_alone,
            "RoadTwin, libsumo": lambda out: simulate(inputs, out_dir=out, backend="libsumo"),
            "RoadTwin, TraCI": lambda out: simulate(inputs, out_dir=out, backend="traci"),
        }
        results: dict[str, list[float]] = {}
        delays: dict[str, float] = {}
        for rep in range(args.repeat):
            for name, fn in modes.items():  # interleaved, so machine noise hits every mode alike
                out = root / f"{len(results.get(name, []))}-{name.split()[1].strip(',')}"
                out.mkdir(parents=True, exist_ok=True)
                wall = fn(out)
                results.setdefault(name, []).append(wall)
                if name.startswith("SUMO"):
                    for n in ("tripinfo", "summary", "statistics", "edgedata"):
                        (out / f"{n}.tmp.xml").rename(out / f"{n}.xml")
                veh, _ = read_tripinfo(out / "tripinfo.xml")
                delays[name] = float(veh["timeLoss"].mean())
                _ = read_statistics(out / "statistics.xml")
                print(f"  run {rep + 1}: {name:<26} {wall:7.2f} s", flush=True)

    limit = statistics.median(results["SUMO alone (sumo binary)"])
    print()
    header = f"| {'mode':<26} | {'wall time (s), median':>21} | {'min (s)':>8} | {'real-time factor':>16} "
    header += f"| {'vs SUMO alone':>13} | {'mean delay (s)':>14} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, walls in results.items():
        med = statistics.median(walls)
        print(
            f"| {name:<26} | {med:>21.2f} | {min(walls):>8.2f} | {sim_s / med:>15.0f}x "
            f"| {med / limit:>12.2f}x | {delays[name]:>14.2f} |"
        )
    ratio = statistics.median(results["RoadTwin, libsumo"]) / limit
    print(
        f"\ngoal: RoadTwin libsumo within 1.20x of SUMO alone -> {ratio:.2f}x: "
        f"{'met' if ratio <= 1.2 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
