"""Forecasting: the graph-temporal model against historical average and persistence on held-out days.

Evaluates a trained run (``--run``), or first trains one on a days folder (``--days-dir``, from
``roadtwin twin forecast generate``), and prints MAE, RMSE and MAPE per horizon for every model and
variable (flow in veh/h, speed in km/h; MAPE with the floors of ``roadtwin.twin.forecast.MAPE_FLOORS``),
then the goals: MAE at least 30 % below the best baseline at 30 and 60 min, and a full-zone inference
(batch 1) under 20 ms on this CPU.

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
    args = parser.parse_args(argv)

    from roadtwin.twin.forecast import ForecastConfig, evaluate, train

    run = args.run
    if run is None:
        if args.days_dir is None:
            parser.error("give --run or --days-dir")
        train(days_dir=args.days_dir, out_dir=args.out, config=ForecastConfig(epochs=args.epochs, threads=args.threads),
              resume=args.resume)  # fmt: skip
        run = args.out
    result = evaluate(run_dir=run, threads=args.inference_threads)
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
    for var in ("flow", "speed"):
        for h in GOAL_HORIZONS:
            sel = {r["model"]: r["mae"] for r in rows if r["variable"] == var and r["horizon_min"] == h}
            if "model" not in sel:
                continue
            best = min(v for k, v in sel.items() if k != "model")
            gain = 1 - sel["model"] / best
            met = gain >= GOAL_GAIN
            ok &= met
            print(f"  {var} MAE at {h} min {gain:+.1%} vs best baseline (goal >= {GOAL_GAIN:.0%}): "
                  f"{'met' if met else 'not met'}")  # fmt: skip
    met = result["latency_ms"] < GOAL_LATENCY_MS
    ok &= met
    print(f"  full-zone inference {result['latency_ms']:.2f} ms, {result['threads']} threads "
          f"(goal < {GOAL_LATENCY_MS:g} ms): {'met' if met else 'not met'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
