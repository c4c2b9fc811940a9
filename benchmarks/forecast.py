"""Forecasting: the graph-temporal model against historical average and persistence on held-out days.

Evaluates a trained run (``--run``), or first trains one on a days folder (``--days-dir``, from
``roadtwin twin forecast generate``), and prints MAE, RMSE and MAPE per horizon for every model and
variable (flow in veh/h, speed in km/h; MAPE with the floors of ``roadtwin.twin.forecast.MAPE_FLOORS``),
then the goals: MAE at least 30 % below the best baseline at 30 and 60 min, and a full-zone inference
(batch 1) under 20 ms on this CPU.

With ``--replicas R`` (default 4; 0 skips it) every held-out day is first simulated R more times with
the same conditions (demand level and shape, weather, incident, AV share) and other random seeds
(``roadtwin.twin.dataset.generate_replicas``, cached beside the days). The mean of the replicas is an
oracle that knows everything about the day but its random draws; from its MAE the benchmark estimates
the noise floor, the lowest MAE any forecaster can reach, and so the largest gain over the best baseline
that the data allows at all.

    python benchmarks/forecast.py --run roadtwin-data/forecast/RUN
    python benchmarks/forecast.py --days-dir roadtwin-data/forecast/days/DAYS --epochs 40 --out roadtwin-data/forecast/bench-run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

GOAL_GAIN = 0.30
GOAL_LATENCY_MS = 20.0
GOAL_HORIZONS = (30, 60)
#: What the goal compares with (``replica_mean``, an oracle, is not a baseline).
BASELINES = ("historical_average", "persistence")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when every goal is met, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run folder")
    parser.add_argument("--days-dir", type=Path, help="train a new run on this days folder first")
    parser.add_argument(
        "--out", type=Path, default=Path("roadtwin-data/forecast/bench"), help="new run folder"
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inference-threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--replicas", type=int, default=4, help="re-simulations of each held-out day (0: none)"
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel simulations of the replicas")
    parser.add_argument(
        "--workspace", type=Path, help="where the zone's network is (default: the days folder's workspace)"
    )
    args = parser.parse_args(argv)

    from roadtwin.twin.forecast import ForecastConfig, evaluate, train

    run = args.run
    if run is None:
        if args.days_dir is None:
            parser.error("give --run or --days-dir")
        train(days_dir=args.days_dir, out_dir=args.out, config=ForecastConfig(epochs=args.epochs, threads=args.threads),
              resume=args.resume)  # fmt: skip
        run = args.out
    if args.replicas:
        _replicate_test_days(run, replicas=args.replicas, workers=args.workers, workspace=args.workspace)
    result = evaluate(run_dir=run, threads=args.inference_threads, replicas=args.replicas)
    rows = result["rows"]
    print(f"held-out days {result['test_days']}, {result['n_samples']} samples x {result['edges']} edges")
    print(
        f"{'variable':<8} {'horizon':>7} {'model':<20} {'MAE':>8} {'RMSE':>8} {'MAPE %':>8} {'cong. acc':>9}"
    )
    for var in ("flow", "speed"):
        for h in sorted({r["horizon_min"] for r in rows}):
            for r in (r for r in rows if r["variable"] == var and r["horizon_min"] == h):
                acc = (
                    result["congestion_accuracy"].get(f"{r['model']}@{h}", float("nan"))
                    if var == "speed"
                    else None
                )
                acc_s = f"{acc:9.3f}" if acc is not None else ""
                print(
                    f"{var:<8} {h:>4} min {r['model']:<20} {r['mae']:8.2f} {r['rmse']:8.2f} {r['mape']:8.1f} {acc_s}"
                )
    ok = True
    print("\ngoals")
    gains = {}  # (variable, horizon): (model MAE, best baseline MAE)
    for var in ("flow", "speed"):
        for h in GOAL_HORIZONS:
            sel = {r["model"]: r["mae"] for r in rows if r["variable"] == var and r["horizon_min"] == h}
            if "model" not in sel:
                continue
            best = min(v for k, v in sel.items() if k in BASELINES)
            gains[var, h] = (sel["model"], best)
            gain = 1 - sel["model"] / best
            met = gain >= GOAL_GAIN
            ok &= met
            print(f"  {var} MAE at {h} min {gain:+.1%} vs best baseline (goal >= {GOAL_GAIN:.0%}): "
                  f"{'met' if met else 'not met'}")  # fmt: skip
    met = result["latency_ms"] < GOAL_LATENCY_MS
    ok &= met
    print(f"  full-zone inference {result['latency_ms']:.2f} ms, {result['threads']} threads "
          f"(goal < {GOAL_LATENCY_MS:g} ms): {'met' if met else 'not met'}")  # fmt: skip
    floor = result.get("noise_floor")
    if floor:
        print(f"\nnoise floor (from {result['replicas']} re-simulations of each held-out day; MAE no forecaster "
              "can beat)")  # fmt: skip
        for (var, h), (model, best) in gains.items():
            fl = floor[f"{var}@{h}"]
            print(f"  {var} at {h} min: floor {fl:.2f}, best baseline {best:.2f}: the most any forecaster "
                  f"can gain is {1 - fl / best:+.1%} (goal {GOAL_GAIN:.0%}); the model {1 - model / best:+.1%}")  # fmt: skip
    return 0 if ok else 1


def _replicate_test_days(run: Path, *, replicas: int, workers: int, workspace: Path | None) -> None:
    """Simulate the run's held-out days ``replicas`` times more (cached; finished replicas are skipped)."""
    import yaml

    from roadtwin.twin.dataset import generate_replicas
    from roadtwin.workspace import Workspace

    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    days_dir = Path(cfg["days_dir"])
    test = [d for d, part in zip(cfg["days"], cfg["split"], strict=True) if part == "test"]
    if workspace is None:  # a days folder lives in WORKSPACE/forecast/days/NAME
        workspace = days_dir.parents[2] if days_dir.parent.name == "days" else Path("roadtwin-data")
    print(f"replicating held-out days {test} x {replicas} ...", flush=True)
    generate_replicas(folder=days_dir, days=test, replicas=replicas, workspace=Workspace.at(workspace),
                      workers=workers)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
