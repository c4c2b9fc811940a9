"""Environment speed: RoadTwin's parallel signal env vs sumo-rl's, side by side in one run.

Both on libsumo, the same RESCO network, routes and window, a decision every 5 s with 2 s yellow and
5 s min green (sumo-rl's defaults and REFERENCE.md's measurement), a uniformly random policy, one full
episode (reset included) per measurement. Each measurement runs in its own process (libsumo runs one
simulation per process); sumo-rl's gets ``LIBSUMO_AS_TRACI`` in its environment only. sumo-rl 1.4.5's
``parallel_env`` fails with PettingZoo 1.27, so its multi-agent ``SumoEnvironment`` is driven directly
(the same core, without the AEC wrappers: the peer's fastest path). ``--backends traci`` adds TraCI
runs, where each of the peer's per-lane getters is a socket round trip and subscriptions matter most.

A third column, **SUMO floor**, runs the same episode as RoadTwin (same actions, yellows and min/max
green through :class:`~roadtwin.sim.signals.SignalActuator`) with no observation, reward or info: the
simulation's own cost, which no environment can beat. ``RoadTwin / floor`` shows how little the
environment adds; ``floor / sumo-rl`` caps the ratio any environment can reach against the peer.

Goal: RoadTwin >= 2x sumo-rl's env steps/s on cologne8 and ingolstadt21.

    python benchmarks/env_speed.py [--scenarios cologne8 ingolstadt21] [--repeat 3] [--seconds 3600]
                                   [--backends libsumo traci]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

DELTA_TIME = 5
YELLOW_TIME = 2
MIN_GREEN = 5
MAX_GREEN = 50
MODES = ("roadtwin", "sumo-rl", "floor")


def _worker_roadtwin(name: str, seconds: int, seed: int, backend: str) -> dict[str, float]:
    import numpy as np

    from roadtwin.sim.env import TrafficSignalParallelEnv
    from roadtwin.sim.resco import resco_files

    net, routes, begin, _ = resco_files(name)
    env = TrafficSignalParallelEnv(
        net_file=net,
        route_files=routes,
        begin=begin,
        end=begin + seconds,
        delta_time=DELTA_TIME,
        yellow_time=YELLOW_TIME,
        min_green=MIN_GREEN,
        max_green=MAX_GREEN,
        backend=backend,  # type: ignore[arg-type]
    )
    rng = np.random.default_rng(seed)
    n_actions = {a: int(env.action_space(a).n) for a in env.possible_agents}  # type: ignore[attr-defined]
    t0, c0 = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    steps = 0
    while env.agents:
        env.step({a: int(rng.integers(n)) for a, n in n_actions.items()})
        steps += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return {"steps": steps, "wall": wall, "cpu": cpu}


def _worker_floor(name: str, seconds: int, seed: int, backend: str) -> dict[str, float]:
    """RoadTwin's episode (same SUMO command, seed, actions and actuation) without any measurement."""
    import numpy as np
    from gymnasium.utils import seeding

    from roadtwin.sim.backend import start
    from roadtwin.sim.env import TrafficSignalParallelEnv
    from roadtwin.sim.resco import resco_files
    from roadtwin.sim.signals import SignalActuator

    net, routes, begin, _ = resco_files(name)
    env = TrafficSignalParallelEnv(net_file=net, route_files=routes, begin=begin, end=begin + seconds)
    layout = env.layout
    actuator = SignalActuator(layout, yellow_time=YELLOW_TIME, min_green=MIN_GREEN, max_green=MAX_GREEN)
    rng = np.random.default_rng(seed)
    sumo_seed = int(seeding.np_random(seed)[0].integers(0, 2**31 - 1))  # what env.reset(seed=seed) draws
    end = begin + seconds
    t0, c0 = time.perf_counter(), time.process_time()
    session = start(env._core.command(sumo_seed), backend=backend)  # type: ignore[arg-type]
    actuator.reset(session.conn)
    steps, t = 0, float(begin)
    while t < end - 1e-6:
        t = min(t + DELTA_TIME, end)
        actuator.step(session, np.array([rng.integers(k) for k in layout.n_greens]), until=t)
        steps += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    session.close()
    return {"steps": steps, "wall": wall, "cpu": cpu}


def _worker_sumo_rl(name: str, seconds: int, seed: int, backend: str) -> dict[str, float]:
    import numpy as np

    from roadtwin import toolchain

    toolchain.ensure_sumo()  # sumo-rl needs SUMO_HOME at import
    import sumo_rl

    from roadtwin.sim.resco import resco_files

    net, routes, begin, _ = resco_files(name)
    env = sumo_rl.SumoEnvironment(
        net_file=str(net),
        route_file=str(routes),
        begin_time=begin,
        num_seconds=seconds,
        delta_time=DELTA_TIME,
        yellow_time=YELLOW_TIME,
        min_green=MIN_GREEN,
        max_green=MAX_GREEN,
        use_gui=False,
        sumo_seed=seed,
        sumo_warnings=False,
    )
    rng = np.random.default_rng(seed)
    n_actions = {ts: int(env.action_spaces(ts).n) for ts in env.ts_ids}
    t0, c0 = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    steps, done = 0, False
    while not done:
        _, _, dones, _ = env.step({ts: int(rng.integers(n)) for ts, n in n_actions.items()})
        done = dones["__all__"]
        steps += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return {"steps": steps, "wall": wall, "cpu": cpu}


WORKERS = {"roadtwin": _worker_roadtwin, "sumo-rl": _worker_sumo_rl, "floor": _worker_floor}


def _measure(mode: str, name: str, seconds: int, seed: int, backend: str) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("LIBSUMO_AS_TRACI", None)
    if mode == "sumo-rl" and backend == "libsumo":
        env["LIBSUMO_AS_TRACI"] = "1"  # only in the peer's own process (GOTCHAS)
    cmd = [sys.executable, __file__, "--worker", mode, name, str(seconds), str(seed), backend]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} on {name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", nargs="+", default=["cologne8", "ingolstadt21"])
    parser.add_argument("--repeat", type=int, default=3, help="episodes per env and scenario (best reported)")
    parser.add_argument("--seconds", type=int, default=3600, help="simulated seconds per episode")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["libsumo"],
        choices=["libsumo", "traci"],
        help="libsumo (the goal) and/or traci",
    )
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, name, seconds, seed, backend = args.worker
        print(json.dumps(WORKERS[mode](name, int(seconds), int(seed), backend)), flush=True)
        return 0

    print(
        f"env steps/s, random policy, delta_time {DELTA_TIME} s, yellow {YELLOW_TIME} s, "
        f"{args.seconds} s episodes ({args.seconds // DELTA_TIME} steps), best of {args.repeat} "
        f"(median in brackets), each in its own process",
        flush=True,
    )
    rows = []
    for backend in args.backends:
        for name in args.scenarios:
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
            for rep in range(args.repeat):
                for mode in MODES:  # interleaved, so machine noise hits every env alike
                    runs[mode].append(_measure(mode, name, args.seconds, seed=rep, backend=backend))
                    print(
                        f"  {name} {backend} {mode:8s} run {rep + 1}: {runs[mode][-1]['wall']:.2f} s",
                        flush=True,
                    )
            best = {m: max(r["steps"] / r["wall"] for r in runs[m]) for m in MODES}
            median = {m: statistics.median(r["steps"] / r["wall"] for r in runs[m]) for m in MODES}
            rows.append((name, backend, best, median))

    print()
    print(
        "| scenario | backend | RoadTwin steps/s | sumo-rl steps/s | ratio (goal >= 2x) | SUMO floor steps/s "
        "| RoadTwin / floor | ceiling: floor / sumo-rl |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, backend, best, median in rows:
        ratio = best["roadtwin"] / best["sumo-rl"]
        print(
            f"| {name} | {backend} | {best['roadtwin']:.0f} ({median['roadtwin']:.0f}) "
            f"| {best['sumo-rl']:.0f} ({median['sumo-rl']:.0f}) | {ratio:.2f}x {'met' if ratio >= 2 else 'not met'} "
            f"| {best['floor']:.0f} ({median['floor']:.0f}) | {best['roadtwin'] / best['floor']:.2f} "
            f"| {best['floor'] / best['sumo-rl']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
