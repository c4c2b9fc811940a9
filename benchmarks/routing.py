"""Routing benchmark: every routing controller x penetration, with and without the best signal controller.

On the zone's incident scenario (``yizhuang_incident``: the 07:15-08:30 morning peak with three of the four
lanes of 科创五街 blocked 07:30-08:15), side by side in one run over several seeds:

- routing: ``none`` (fixed routes), ``rerouting`` (SUMO's rerouting device), ``guidance`` (RoadTwin's
  forecast-aware guidance) and, with ``--rl RUN``, ``rl-routing:RUN`` (the RL agent at the diversion points);
- connected-vehicle penetration 10, 30 and 60 % (``none`` is the 0 % row);
- signals: ``fixed`` (the zone's own programs) and ``rl:zone`` (the zone's best signal controller in
  issue 4's evaluation: the shipped policy, which imitated max-pressure and beats it on the peak), so the
  table shows routing with the best signal controller on and off (``--signals`` takes any controller
  spec, e.g. ``fixed,max-pressure,rl:zone``).

A reference row per signal controller, ``none`` on the same scenario with its incidents cleared, shows
what the incident costs, which is the most routing can win back by steering around it.

Per cell: mean travel time of the vehicles inserted in the window (unfinished trips up to the window's
end), exact delay (REFERENCE.md: also charges vehicles never inserted), throughput (vehicles finished per
hour), vehicles never inserted and still running, route changes made, wall time. Every run writes its own
run folder; each (signals, routing, penetration, seed) result is cached as one JSON line in
``OUT/cells.jsonl``, so ``--resume`` skips what is done and a killed benchmark loses at most the runs in
flight. Runs go to ``--workers`` processes (libsumo: one simulation per process).

Goal (issue 8, binding; reported met / not met, never changed): forecast-aware guidance at least 15 % lower
mean travel time than no guidance under the incident, and lower than SUMO's rerouting device.

    python benchmarks/routing.py [--seeds 3] [--penetrations 0.1,0.3,0.6] [--signals fixed,rl:zone]
        [--routing rerouting,guidance] [--rl RUN] [--scenario yizhuang_incident] [--workers 2]
        [--workspace roadtwin-data] [--out DIR] [--resume] [--no-reference]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

SCENARIO = "yizhuang_incident"
SIGNALS = ("fixed", "rl:zone")
ROUTING = ("rerouting", "guidance")
PENETRATIONS = (0.1, 0.3, 0.6)
GOAL = 0.15
#: The routing name of the reference cells: no guidance, the scenario without its incidents.
CLEARED = "cleared"
METRICS = (
    ("trip_time_s", "travel time s"),
    ("exact_delay_s", "delay s"),
    ("throughput_veh_h", "veh/h"),
    ("never_inserted", "never ins."),
    ("still_running", "running"),
    ("reroutes", "reroutes"),
)


def _key(signals: str, routing: str, share: float, seed: int) -> str:
    return f"{signals}|{routing}|{share:g}|{seed}"


def run_cell(
    scenario: str, workspace: str, signals: str, routing: str, share: float, seed: int
) -> dict[str, Any]:
    """Run one cell in this (fresh) process; return its row."""
    import sumo  # noqa: F401  - sets SUMO_HOME before libsumo loads

    from roadtwin.agents.base import make_controller
    from roadtwin.agents.combined import CombinedControl
    from roadtwin.agents.routing import make_router
    from roadtwin.agents.scenarios import resolve_scenario
    from roadtwin.sim.run import run_inputs
    from roadtwin.workspace import Workspace

    ws = Workspace.at(workspace)
    resolved = resolve_scenario(scenario, workspace=ws)
    router = make_router("none" if routing == CLEARED else routing, penetration=share, seed=seed)
    control = CombinedControl(make_controller(signals), router)
    t0 = time.perf_counter()
    result = run_inputs(
        lambda out: resolved.make_inputs(out, seed),
        name=resolved.name,
        seed=seed,
        config={**resolved.config, "benchmark": "routing"},
        workspace=ws,
        controller=control,
        progress=False,
        report=False,
    )
    m = result.metrics
    return {
        "key": _key(signals, routing, share, seed),
        "signals": signals,
        "routing": routing,
        "penetration": share,
        "seed": seed,
        "trip_time_s": m.mean_trip_time_s,
        "exact_delay_s": m.exact_delay_s,
        "throughput_veh_h": m.throughput_veh_h,
        "never_inserted": m.vehicles_never_inserted,
        "still_running": m.vehicles_still_running,
        "reroutes": control.router.reroutes,
        "wall_s": round(time.perf_counter() - t0, 1),
        "run_dir": str(result.run_dir),
    }


def cleared_scenario(spec: str, out: Path) -> Path | None:
    """Write a copy of scenario ``spec`` without its incidents into ``out``; None when it has none."""
    from roadtwin._io import write_yaml
    from roadtwin.sim.scenario import builtin_scenario, builtin_scenarios, load_scenario

    path = builtin_scenario(spec) if spec in builtin_scenarios() else Path(spec)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return None
    scenario = load_scenario(path)  # relative paths come back absolute
    if not scenario.incidents:
        return None
    dest = out / f"{scenario.name}_{CLEARED}.yaml"
    write_yaml(
        dest, scenario.model_dump(mode="json") | {"incidents": [], "name": f"{scenario.name}_{CLEARED}"}
    )
    return dest


def _load(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a line cut by a kill
                continue
            rows[row["key"]] = row
    return rows


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict[str, Any]], *, cells: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
    """One row per (signals, routing, penetration): mean and std over seeds, and the change in travel
    time against ``none`` with the same signals and seeds."""
    out = []
    for signals, routing, share in cells:
        got = [r for r in rows if (r["signals"], r["routing"], r["penetration"]) == (signals, routing, share)]
        if not got:
            continue
        row: dict[str, Any] = {
            "signals": signals,
            "routing": routing,
            "penetration": share,
            "seeds": len(got),
        }
        for metric, _ in METRICS:
            row[metric], row[f"{metric}_std"] = _mean_std([float(r[metric]) for r in got])
        base = {
            r["seed"]: r["trip_time_s"] for r in rows if r["signals"] == signals and r["routing"] == "none"
        }
        paired = [(r["trip_time_s"], base[r["seed"]]) for r in got if r["seed"] in base]
        row["vs_none"] = (
            statistics.fmean(a for a, _ in paired) / statistics.fmean(b for _, b in paired) - 1.0
            if paired
            else float("nan")
        )
        out.append(row)
    return out


def _short(routing: str) -> str:
    """``rl-routing:/long/path/RUN`` as ``rl-routing:RUN``; the reference cells by what they are."""
    from roadtwin.agents.base import short_spec

    return "none, incident cleared" if routing == CLEARED else short_spec(routing)


def print_table(summary: list[dict[str, Any]], *, title: str) -> str:
    """Print the summary as a Markdown table; return it."""
    head = [
        "signals",
        "routing",
        "connected",
        "seeds",
        *(label for _, label in METRICS),
        "travel time vs none",
    ]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        cells = [r["signals"], _short(r["routing"]), f"{r['penetration'] * 100:g} %", str(r["seeds"])]
        for metric, _ in METRICS:
            digits = 0 if metric in ("throughput_veh_h", "never_inserted", "still_running", "reroutes") else 1
            cells.append(f"{r[metric]:.{digits}f} ± {r[f'{metric}_std']:.{digits}f}")
        cells.append("" if r["routing"] == "none" else f"{r['vs_none'] * 100:+.1f} %")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def goal_lines(summary: list[dict[str, Any]]) -> list[str]:
    """Met / not met, per signals and penetration, for guidance (and the RL agent)."""
    out = []
    by = {(r["signals"], r["routing"], r["penetration"]): r for r in summary}
    for (signals, routing, share), r in by.items():
        if routing == CLEARED:
            out.append(
                f"- {signals}: without the incident, travel time {r['vs_none'] * 100:+.1f} % vs none: the most "
                "routing can win by steering around it"
            )
            continue
        if routing not in ("guidance",) and not routing.startswith("rl-routing"):
            continue
        device = by.get((signals, "rerouting", share))
        met_goal = r["vs_none"] <= -GOAL
        vs_device = (r["trip_time_s"] / device["trip_time_s"] - 1.0) if device else float("nan")
        out.append(
            f"- {signals}, {_short(routing)} at {share * 100:g} %: travel time {r['vs_none'] * 100:+.1f} % vs none "
            f"(goal -15 %: {'met' if met_goal else 'NOT met'}); "
            + (
                f"{vs_device * 100:+.1f} % vs the rerouting device "
                f"({'better' if vs_device < 0 else 'NOT better'})"
                if device
                else "no rerouting-device cell"
            )
        )
    return out


def plot(summary: list[dict[str, Any]], path: Path) -> Path:
    """Travel time against penetration, one line per router, one panel per signal controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signals = list(dict.fromkeys(r["signals"] for r in summary))
    fig, axes = plt.subplots(1, len(signals), figsize=(5.5 * len(signals), 4), sharey=True, squeeze=False)
    for ax, sig in zip(axes[0], signals, strict=True):
        rows = [r for r in summary if r["signals"] == sig]
        none = next((r for r in rows if r["routing"] == "none"), None)
        for routing in dict.fromkeys(r["routing"] for r in rows if r["routing"] not in ("none", CLEARED)):
            pts = sorted(
                (r["penetration"], r["trip_time_s"], r["trip_time_s_std"])
                for r in rows
                if r["routing"] == routing
            )
            if none is not None:
                pts = [(0.0, none["trip_time_s"], none["trip_time_s_std"]), *pts]
            xs, ys, es = zip(*pts, strict=True)
            ax.errorbar([x * 100 for x in xs], ys, yerr=es, marker="o", capsize=3, label=_short(routing))
        if none is not None:
            ax.axhline(
                none["trip_time_s"] * (1 - GOAL), color="grey", ls="--", lw=1, label="goal: -15 % vs none"
            )
        cleared = next((r for r in rows if r["routing"] == CLEARED), None)
        if cleared is not None:
            ax.axhline(
                cleared["trip_time_s"], color="green", ls=":", lw=1, label="no guidance, incident cleared"
            )
        ax.set_title(f"signals: {sig}")
        ax.set_xlabel("connected vehicles (%)")
        ax.set_ylabel("mean travel time (s)")
        ax.legend(fontsize=8)
    fig.suptitle("Routing under the incident (mean ± std over seeds)")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default=SCENARIO)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--penetrations", default=",".join(f"{p:g}" for p in PENETRATIONS))
    parser.add_argument("--signals", default=",".join(SIGNALS))
    parser.add_argument("--routing", default=",".join(ROUTING))
    parser.add_argument("--rl", help="A routing training run (roadtwin agents train --task routing) to add.")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--workspace", default="roadtwin-data")
    parser.add_argument("--out", help="Output folder (default WORKSPACE/bench-routing/SCENARIO).")
    parser.add_argument(
        "--resume", action="store_true", help="Keep the cached cells; run only the missing ones."
    )
    parser.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="Skip the reference cells (no guidance, the scenario's incidents cleared).",
    )
    args = parser.parse_args(argv)

    shares = [float(p) for p in args.penetrations.split(",") if p]
    signals = [s for s in args.signals.split(",") if s]
    routers = [r for r in args.routing.split(",") if r]
    if args.rl:
        routers.append(f"rl-routing:{Path(args.rl).resolve()}")
    out = Path(args.out) if args.out else Path(args.workspace) / "bench-routing" / Path(args.scenario).stem
    out.mkdir(parents=True, exist_ok=True)
    cleared = cleared_scenario(args.scenario, out) if args.reference else None
    reference = [CLEARED] if cleared else []
    cells = [
        c
        for sig in signals
        for c in [(sig, r, 0.0) for r in ["none", *reference]]
        + [(sig, r, p) for r in routers for p in shares]
    ]
    seeds = list(range(args.seeds))
    cache = out / "cells.jsonl"
    if not args.resume and cache.exists():
        cache.replace(out / f"cells.{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    done = _load(cache)
    todo = [(s, r, p, seed) for s, r, p in cells for seed in seeds if _key(s, r, p, seed) not in done]
    print(f"{len(cells) * len(seeds)} runs, {len(done)} cached, {len(todo)} to run on {args.workers} workers")
    t0 = time.perf_counter()
    failures = []
    if todo:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {
                pool.submit(
                    run_cell,
                    str(cleared if r == CLEARED else args.scenario),
                    str(Path(args.workspace).resolve()),
                    s,
                    r,
                    p,
                    seed,
                ): (
                    s,
                    r,
                    p,
                    seed,
                )
                for s, r, p, seed in todo
            }
            for n, fut in enumerate(as_completed(futures), 1):
                cell = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:  # a failed cell is reported; the others go on
                    failures.append((cell, exc))
                    print(f"[{n}/{len(todo)}] {cell} FAILED: {type(exc).__name__}: {exc}", flush=True)
                    continue
                _append(cache, row)
                done[row["key"]] = row
                print(
                    f"[{n}/{len(todo)}] {cell[0]} {cell[1]} {cell[2] * 100:g}% seed {cell[3]}: "
                    f"travel {row['trip_time_s']:.1f} s, delay {row['exact_delay_s']:.1f} s, "
                    f"{row['reroutes']} reroutes ({row['wall_s']:.0f} s)",
                    flush=True,
                )
    rows = [done[_key(s, r, p, seed)] for s, r, p in cells for seed in seeds if _key(s, r, p, seed) in done]
    summary = summarize(rows, cells=cells)
    title = f"{Path(args.scenario).stem}: routing x penetration x signals, {len(seeds)} seeds"
    table = print_table(summary, title=title)
    goals = goal_lines(summary)
    print("\nGoal (forecast-aware guidance >= 15 % below no guidance, and below SUMO's rerouting device):")
    print("\n".join(goals))
    png = plot(summary, out / "routing.png")
    report = out / "results.md"
    tmp = report.with_name("results.tmp.md")
    tmp.write_text(table + "\n\n" + "\n".join(goals) + f"\n\n![routing]({png.name})\n", encoding="utf-8")
    os.replace(tmp, report)
    print(
        f"\n{len(todo) - len(failures)} runs in {time.perf_counter() - t0:.0f} s; table: {report}; plot: {png}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
