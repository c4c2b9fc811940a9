"""RESCO benchmark: every controller side by side, in one run, over several seeds, beside RESCO's figures.

On cologne1/3/8 and ingolstadt1/7/21 (RESCO's windows, 10 s decisions, 3 s yellow, teleporting off):

- **classic controllers** (``fixed``, ``webster``, ``actuated``, ``max-pressure`` ...) through
  :func:`roadtwin.agents.evaluate.evaluate`;
- **RoadTwin RL**: :func:`roadtwin.agents.train.train` with a budget of ``--episodes`` episodes per
  scenario (an episode is the window over 10 s decisions, 360 steps per signal for one hour; a policy
  shared by N signals makes N SB3 steps per environment step, so the budget is episodes x 360 x N), then
  ``rl:RUN`` through ``evaluate`` over the same seeds. With PPO, ``--imitate`` of these episodes (default
  10) are max-pressure demonstrations the policy imitates before RL takes the rest
  (:mod:`roadtwin.agents.imitation`; the environment then keeps max-pressure's own bounds,
  :data:`IMITATION_TIMINGS`) and, with ``--imitate-coef`` (default 1), keeps imitating them with a weight
  falling to 0 over the budget; ``--imitate 0`` trains from scratch with the training defaults; the
  model kept is the best of evaluations that replay the same ``--eval-episodes`` SUMO seeds each time;
- **sumo-rl's DQN** (a benchmark-only extra): SB3 DQN on ``sumo_rl.SumoEnvironment`` (its own
  observation and ``diff-waiting-time`` reward, RESCO's 10 s / 3 s timings, libsumo through
  ``LIBSUMO_AS_TRACI=1`` set in its own subprocess only), the same number of env steps and the same DQN
  hyper-parameters as RoadTwin's ``dqn`` defaults, a new SUMO seed each episode. It is evaluated over
  the same seeds with SUMO's tripinfo (``--tripinfo-output.write-unfinished``) and scored with
  :mod:`roadtwin.sim.metrics` against the RESCO route file, so every column uses one definition.
  Single-signal scenarios only: sumo-rl 1.4.5's ``parallel_env`` fails with PettingZoo 1.27, and its
  multi-agent dict API has no SB3 binding (independent learners per signal would be a new
  implementation, not sumo-rl's own DQN), so multi-signal scenarios report ``n/a``;
- **RESCO's published figures** (Fixed, MaxPressure, IDQN, IPPO, best learner; SUMO 1.9), hard-coded
  below from REFERENCE.md (Pi-Star-Lab/RESCO, ``resco_benchmark/utils/avg_timeLoss.py``);
- **env steps/s** of RoadTwin's env vs sumo-rl's on cologne8 and ingolstadt21 (libsumo), measured by
  ``benchmarks/env_speed.py`` in a subprocess (its own protocol: 5 s decisions, random policy).

Each cell (scenario x controller, and the env-speed table) is cached as JSON under
``WORKSPACE/bench-resco/cells/``; ``--resume`` skips finished cells (with the same settings) and
continues an interrupted RoadTwin training run from its last checkpoint, so a killed benchmark resumes.

Goals (issue, binding; reported met / not met and by how much, never changed): RoadTwin's RL at or
below the published best learner's delay on every scenario, never worse than fixed-time, no vehicle
blocked at insertion, within 100 training episodes per scenario; env throughput >= 2x sumo-rl's.

    python benchmarks/resco.py [--scenarios cologne1 ...] [--seeds 3] [--episodes 100]
        [--controllers fixed,webster,actuated,max-pressure] [--rl-algo ppo] [--imitate 10] [--imitate-coef 1]
        [--eval-episodes 3] [--no-rl] [--no-sumo-rl]
        [--no-env-speed] [--workspace roadtwin-data] [--out results.md] [--resume]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

SCENARIOS = ("cologne1", "cologne3", "cologne8", "ingolstadt1", "ingolstadt7", "ingolstadt21")
CLASSIC = ("fixed", "webster", "actuated", "max-pressure")
ENV_SPEED_SCENARIOS = ("cologne8", "ingolstadt21")
SUMO_RL = "sumo-rl DQN"
#: The RL environment's bounds when the policy imitates max-pressure first: max-pressure's own (max green
#: 120 s, a green unserved 600 s goes next). With the training defaults (60 s and 120 s) max-pressure
#: itself scores 25.7 s on cologne3 (seeds 0-2) against 21.2 s, and 28.5 s on cologne8 against 24.7 s.
IMITATION_TIMINGS = {"max_green": 120.0, "max_red": 600.0}
FIXED = "fixed"
METRICS = (
    "resco_delay_s",
    "exact_delay_s",
    "trip_time_s",
    "wait_s",
    "never_inserted",
    "blocked",
    "still_running",
)

#: RESCO's published average delay (s): static controllers mean over episodes, learners best episode.
#: Source: REFERENCE.md, from Pi-Star-Lab/RESCO ``resco_benchmark/utils/avg_timeLoss.py`` (SUMO 1.9).
PUBLISHED_DELAY: dict[str, dict[str, float]] = {
    "cologne1": {"Fixed": 56.61, "MaxPressure": 65.85, "IDQN": 26.05, "IPPO": 43.24, "best learner": 26.05},
    "cologne3": {"Fixed": 46.35, "MaxPressure": 162.28, "IDQN": 23.99, "IPPO": 24.03, "best learner": 23.99},
    "cologne8": {"Fixed": 63.77, "MaxPressure": 47.73, "IDQN": 22.06, "IPPO": 21.62, "best learner": 21.62},
    "ingolstadt1": {
        "Fixed": 39.40,
        "MaxPressure": 23.62,
        "IDQN": 21.48,
        "IPPO": 20.90,
        "best learner": 20.90,
    },
    "ingolstadt7": {
        "Fixed": 91.31,
        "MaxPressure": 46.82,
        "IDQN": 31.19,
        "IPPO": 31.68,
        "best learner": 31.19,
    },
    "ingolstadt21": {
        "Fixed": 133.10,
        "MaxPressure": 136.72,
        "IDQN": 59.64,
        "IPPO": 93.11,
        "best learner": 59.64,
    },
}
#: RESCO's published learner trip times (s), IDQN / IPPO (same source).
PUBLISHED_TRIP: dict[str, dict[str, float]] = {
    "cologne1": {"IDQN": 43.59, "IPPO": 58.43},
    "cologne3": {"IDQN": 59.00, "IPPO": 59.52},
    "cologne8": {"IDQN": 86.02, "IPPO": 85.71},
    "ingolstadt1": {"IDQN": 35.29, "IPPO": 35.08},
    "ingolstadt7": {"IDQN": 68.69, "IPPO": 69.11},
    "ingolstadt21": {"IDQN": 197.23, "IPPO": 233.71},
}
#: The published learner RESCO trained for 100 episodes is IDQN; IPPO had 1400 (REFERENCE.md).
RESCO_EPISODES = {"IDQN": 100, "IPPO": 1400}


# --- cells --------------------------------------------------------------------------------------------------


def _cell_path(cells: Path, scenario: str, label: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
    return cells / f"{scenario}__{safe}.json"


def _load_cell(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("params") == params else None


def _save_cell(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    tmp.replace(path)


def _rows_from_results(results: Any) -> list[dict[str, Any]]:
    return [{"seed": int(r["seed"]), **{m: float(r[m]) for m in METRICS}} for r in results.to_dict("records")]


# --- classic controllers and RoadTwin RL ----------------------------------------------------------------


def _evaluate_rows(scenario: str, spec: str, seeds: list[int], ws: Any, duration: float | None) -> list:
    from roadtwin.agents.evaluate import evaluate

    result = evaluate(
        scenario=scenario, controllers=[spec], seeds=seeds, workspace=ws, duration_s=duration, progress=False
    )
    return _rows_from_results(result.results)


def _classic(scenario: str, spec: str, seeds: list[int], ws: Any, duration: float | None) -> dict:
    return {"rows": _evaluate_rows(scenario, spec, seeds, ws, duration)}


def _steps_per_episode(scenario: str, duration: float | None) -> int:
    from roadtwin.sim.resco import RESCO_SCENARIOS

    s = RESCO_SCENARIOS[scenario]
    window = min(s.end - s.begin, duration) if duration else s.end - s.begin
    return math.ceil(window / s.delta_time)


def _unfinished_run(ws: Any, scenario: str, config: Any) -> Path | None:
    """The newest training run of this scenario and settings with no ``train.json`` yet (killed)."""
    import yaml

    runs = sorted(ws.runs.glob(f"{scenario}__{config.algo}__{config.seed}__*"), reverse=True)
    for run in runs:
        cfg = run / "config.yaml"
        if (run / "train.json").exists() or not cfg.is_file():
            continue
        saved = (yaml.safe_load(cfg.read_text()) or {}).get("train", {})
        if saved == config.model_dump(mode="json"):
            return run
    return None


def _roadtwin_rl(
    scenario: str,
    seeds: list[int],
    ws: Any,
    *,
    episodes: int,
    algo: str,
    duration: float | None,
    resume: bool,
    imitate: int = 0,
    imitate_coef: float = 0.0,
    eval_episodes: int = 3,
) -> dict[str, Any]:
    from roadtwin.agents.train import TrainConfig, train
    from roadtwin.sim.resco import RESCO_SCENARIOS

    per_episode = _steps_per_episode(scenario, duration)
    n_signals = RESCO_SCENARIOS[scenario].signals
    recipe = (
        {"imitate_episodes": imitate, "imitate_coef": imitate_coef, **IMITATION_TIMINGS} if imitate else {}
    )
    defaults = TrainConfig(scenario=scenario, algo=algo, **recipe)  # type: ignore[arg-type]
    # SB3 collects whole rollouts (PPO: n_steps per env step; DQN: train_freq): round the budget *down*
    # to them, so that the run never trains past its episodes (the demonstrations are some of them).
    block = (defaults.n_steps if algo == "ppo" else defaults.train_freq) * n_signals
    steps = max(block, ((episodes - imitate) * per_episode * n_signals) // block * block)
    every = max(1, min(10, episodes)) * per_episode * n_signals  # evaluate (best model) ~10x per budget
    config = defaults.model_copy(
        update={
            "total_timesteps": steps,
            "eval_every": every,
            "eval_episodes": eval_episodes,
            "checkpoint_every": max(per_episode * n_signals, every // 2),
            "duration_s": duration,
            "progress": False,
        }
    )
    unfinished = _unfinished_run(ws, scenario, config) if resume else None
    t0 = time.perf_counter()
    run = train(None, workspace=ws, resume=unfinished) if unfinished else train(config, workspace=ws)
    info = json.loads((run / "train.json").read_text())
    trained_episodes = info["num_timesteps"] / (per_episode * n_signals) + imitate
    rows = _evaluate_rows(scenario, f"rl:{run}", seeds, ws, duration)
    return {
        "rows": rows,
        "run": str(run),
        "train_wall_s": round(time.perf_counter() - t0, 1),
        "num_timesteps": info["num_timesteps"],
        "episodes": round(trained_episodes, 2),
    }


# --- sumo-rl's DQN (subprocess) -------------------------------------------------------------------------


def _sumo_rl_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate SB3 DQN on sumo-rl's own single-agent env (runs with LIBSUMO_AS_TRACI set)."""
    from roadtwin import toolchain

    toolchain.ensure_sumo()  # sumo-rl needs SUMO_HOME at import (GOTCHAS)
    import gymnasium as gym
    import sumo_rl
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.utils import set_random_seed

    from roadtwin.agents.train import TrainConfig
    from roadtwin.sim.metrics import read_schedule, read_tripinfo, summarize
    from roadtwin.sim.resco import RESCO_SCENARIOS, resco_files

    name = job["scenario"]
    net, routes, begin, end = resco_files(name)
    spec = RESCO_SCENARIOS[name]
    seconds = int(min(end - begin, job["duration"])) if job["duration"] else end - begin
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    if " " in str(out.resolve()):
        raise ValueError(f"sumo-rl splits additional_sumo_cmd on spaces: {out.resolve()} has one")
    torch.set_num_threads(1)
    set_random_seed(0)

    def make(seed: int, extra: str | None = None) -> Any:
        return sumo_rl.SumoEnvironment(
            net_file=str(net),
            route_file=str(routes),
            begin_time=begin,
            num_seconds=seconds,
            delta_time=spec.delta_time,
            yellow_time=spec.yellow_time,
            single_agent=True,
            sumo_seed=seed,
            sumo_warnings=False,
            additional_sumo_cmd=extra,
        )

    class NewSeedEachEpisode(gym.Wrapper):
        """RESCO draws a new seed each episode; SB3 resets without a seed after the first episode."""

        def __init__(self, env: Any, base: int) -> None:
            super().__init__(env)
            self.episode = base

        def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
            self.episode += 1
            return self.env.reset(seed=self.episode if seed is None else seed, options=options)

    d = TrainConfig(scenario=name, algo="dqn")  # RoadTwin's DQN hyper-parameters, for a fair comparison
    env = NewSeedEachEpisode(make(1000), base=1000)
    t0 = time.perf_counter()
    try:
        model = DQN(
            "MlpPolicy",
            env,
            learning_rate=1e-3,
            gamma=d.gamma,
            batch_size=d.batch_size,
            buffer_size=d.buffer_size,
            learning_starts=d.learning_starts,
            train_freq=d.train_freq,
            target_update_interval=d.target_update_interval,
            exploration_fraction=d.exploration_fraction,
            exploration_final_eps=d.exploration_final_eps,
            device="cpu",
            seed=0,
            verbose=0,
        )
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a folder in /tmp
        model.learn(total_timesteps=int(job["timesteps"]))
        steps = int(model.num_timesteps)
    finally:
        env.close()
    train_wall = time.perf_counter() - t0

    schedule = read_schedule([routes])
    rows = []
    for seed in job["seeds"]:
        trip = out / f"tripinfo_{seed}.xml"
        env = make(seed, f"--tripinfo-output {trip.resolve()} --tripinfo-output.write-unfinished")
        try:
            obs, _ = env.reset(seed=seed)
            done = False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, _, terminated, truncated, _ = env.step(int(action))
                done = terminated or truncated
        finally:
            env.close()  # writes the tripinfo, unfinished vehicles included
        vehicles, _ = read_tripinfo(trip)
        m = summarize(vehicles=vehicles, schedule=schedule, begin=begin, end=begin + seconds)
        rows.append(
            {
                "seed": seed,
                "resco_delay_s": m.resco_delay_s,
                "exact_delay_s": m.exact_delay_s,
                "trip_time_s": m.mean_trip_time_s,
                "wait_s": m.mean_wait_s,
                "never_inserted": m.vehicles_never_inserted,
                "blocked": m.vehicles_blocked,
                "still_running": m.vehicles_still_running,
            }
        )
    return {"rows": rows, "num_timesteps": steps, "train_wall_s": round(train_wall, 1)}


def _sumo_rl(
    scenario: str, seeds: list[int], ws: Any, *, episodes: int, duration: float | None
) -> dict[str, Any]:
    from roadtwin.sim.resco import RESCO_SCENARIOS

    if RESCO_SCENARIOS[scenario].signals > 1:
        return {
            "na": "multi-signal: sumo-rl 1.4.5's parallel_env fails with PettingZoo 1.27 and its dict API "
            "has no SB3 binding"
        }
    per_episode = _steps_per_episode(scenario, duration)
    job = {
        "scenario": scenario,
        "seeds": seeds,
        "duration": duration,
        "timesteps": episodes * per_episode,
        "out_dir": str(ws.root / "bench-resco" / "sumo-rl" / scenario),
    }
    env = dict(os.environ)
    env["LIBSUMO_AS_TRACI"] = "1"  # only in the peer's own process (GOTCHAS)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sumo-rl-worker", json.dumps(job)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"sumo-rl DQN on {scenario} failed:\n{proc.stderr[-3000:]}")
    data = json.loads(lines[-1])
    data["episodes"] = round(data["num_timesteps"] / per_episode, 2)
    return data


# --- env speed ---------------------------------------------------------------------------------------------


def _env_speed(repeat: int) -> dict[str, Any]:
    """Run ``benchmarks/env_speed.py`` (libsumo, cologne8 and ingolstadt21); keep its table and ratios."""
    script = Path(__file__).resolve().with_name("env_speed.py")
    cmd = [sys.executable, str(script), "--scenarios", *ENV_SPEED_SCENARIOS, "--repeat", str(repeat)]
    env = {k: v for k, v in os.environ.items() if k != "LIBSUMO_AS_TRACI"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"env_speed failed:\n{proc.stderr[-3000:]}")
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
    ratios: dict[str, float] = {}
    for ln in table[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        ratios[cells[0]] = float(cells[4].split("x")[0])
    return {"table": table, "ratios": ratios}


# --- report --------------------------------------------------------------------------------------------------


def _stats(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [float(r[key]) for r in rows]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


HEADER = (
    "| controller | source | RESCO delay (s) | exact delay (s) | trip time (s) | never inserted "
    "| blocked > 60 s | still running | training episodes |"
)


def scenario_table(scenario: str, cells: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows of one scenario: measured cells (mean ± std over seeds), then RESCO's figures."""
    lines = [HEADER, "|---|---|---|---|---|---|---|---|---|"]
    for label, cell in cells.items():
        if "na" in cell:
            lines.append(f"| {label} | measured | n/a: {cell['na']} | | | | | | |")
            continue
        rows = cell["rows"]
        d, ds = _stats(rows, "resco_delay_s")
        e, es = _stats(rows, "exact_delay_s")
        t, ts = _stats(rows, "trip_time_s")
        ni = [int(r["never_inserted"]) for r in rows]
        bl = [int(r["blocked"]) for r in rows]
        sr = [int(r["still_running"]) for r in rows]
        eps = _fmt(cell["episodes"], 1) if "episodes" in cell else "–"
        lines.append(
            f"| {label} | measured ({len(rows)} seeds) | {d:.2f} ± {ds:.2f} | {e:.2f} ± {es:.2f} "
            f"| {t:.2f} ± {ts:.2f} | {statistics.fmean(ni):.1f} (max {max(ni)}) "
            f"| {statistics.fmean(bl):.1f} (max {max(bl)}) | {statistics.fmean(sr):.1f} | {eps} |"
        )
    trips = PUBLISHED_TRIP.get(scenario, {})
    for label, delay in PUBLISHED_DELAY.get(scenario, {}).items():
        eps = RESCO_EPISODES.get(label)
        lines.append(
            f"| RESCO {label} | published (SUMO 1.9) | {delay:.2f} | – | {_fmt(trips.get(label))} | – | – "
            f"| – | {eps if eps else '–'} |"
        )
    return lines


def goals_section(
    results: dict[str, dict[str, dict[str, Any]]],
    rl_label: str | None,
    episodes: int,
    speed: dict[str, Any] | None,
    duration: float | None,
) -> list[str]:
    """Each goal: met / not met, and by how much."""
    out = ["## Goals", ""]
    if duration:
        out += [f"Shortened run ({duration:.0f} s per episode): the published comparison does not apply.", ""]
    if rl_label is None:
        out.append("- RoadTwin RL goals: not measured (`--no-rl`).")
    else:
        for scenario, cells in results.items():
            cell = cells.get(rl_label)
            if not cell or "rows" not in cell:
                continue
            rows = cell["rows"]
            d, _ = _stats(rows, "resco_delay_s")
            best = PUBLISHED_DELAY[scenario]["best learner"]
            gap = d - best
            verdict = "met" if gap <= 0 else f"not met by {gap:.2f} s ({100 * gap / best:.0f} %)"
            out.append(f"- {scenario}: RL delay {d:.2f} s vs published best learner {best:.2f} s: {verdict}")
            fixed = cells.get(FIXED)
            if fixed and "rows" in fixed:
                by_seed = {r["seed"]: r["resco_delay_s"] for r in fixed["rows"]}
                diffs = [r["resco_delay_s"] - by_seed[r["seed"]] for r in rows if r["seed"] in by_seed]
                worst = max(diffs)
                verdict = "met" if worst <= 0 else f"not met: worse by up to {worst:.2f} s on a seed"
                out.append(
                    f"- {scenario}: never worse than fixed-time (same seeds, "
                    f"{statistics.fmean(diffs):+.2f} s on average): {verdict}"
                )
            else:
                out.append(f"- {scenario}: never worse than fixed-time: not measured (fixed not run)")
            blocked = max(int(r["blocked"]) for r in rows)
            verdict = "met" if blocked == 0 else f"not met: up to {blocked} vehicles blocked > 60 s"
            out.append(f"- {scenario}: no vehicle blocked at insertion: {verdict}")
            used = cell.get("episodes", episodes)
            verdict = "met" if used <= 100 + 1e-9 else f"not met by {used - 100:.1f} episodes"
            out.append(f"- {scenario}: within 100 training episodes ({used:.1f} used): {verdict}")
    if speed is None:
        out.append("- env throughput >= 2x sumo-rl's: not measured (`--no-env-speed`).")
    else:
        for name, ratio in speed["ratios"].items():
            verdict = "met" if ratio >= 2 else f"not met by {2 - ratio:.2f}x"
            out.append(f"- {name}: env steps/s {ratio:.2f}x sumo-rl's (goal >= 2x): {verdict}")
    return out


# --- main ------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    p.add_argument("--seeds", type=int, default=3, help="evaluation seeds 0 .. N-1 (default 3)")
    p.add_argument("--episodes", type=int, default=100, help="training budget per scenario (episodes)")
    p.add_argument("--controllers", default=",".join(CLASSIC), help="comma-separated classic controllers")
    p.add_argument("--rl", action=argparse.BooleanOptionalAction, default=True, help="RoadTwin's RL")
    p.add_argument("--rl-algo", choices=("ppo", "dqn"), default="ppo")
    p.add_argument(
        "--imitate",
        type=int,
        default=10,
        help="of the episodes, how many are max-pressure demonstrations the policy imitates first "
        "(PPO; 0: RL from scratch with the training defaults)",
    )
    p.add_argument(
        "--imitate-coef",
        type=float,
        default=1.0,
        help="keep imitating during RL: cloning steps at this times the RL learning rate, falling "
        "linearly to 0 over the budget (0: clone once, then RL alone; default 1)",
    )
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=3,
        help="episodes per evaluation of RoadTwin's RL while it trains (the same SUMO seeds each time; "
        "the best one is kept): more rank policies by lock risk where one episode cannot (default 3)",
    )
    p.add_argument("--sumo-rl", action=argparse.BooleanOptionalAction, default=True, help="sumo-rl's DQN")
    p.add_argument("--env-speed", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--env-speed-repeat", type=int, default=3)
    p.add_argument("--duration", type=float, default=None, help="simulate only the first seconds (tests)")
    p.add_argument("--workspace", type=Path, default=Path("roadtwin-data"))
    p.add_argument("--out", type=Path, default=Path("results.md"))
    p.add_argument("--resume", action="store_true", help="skip finished cells (same settings)")
    p.add_argument("--sumo-rl-worker", help=argparse.SUPPRESS)
    return p


def _rl_option_problem(args: argparse.Namespace, imitate: int) -> str | None:
    """What is wrong with the RL options (one line), or None."""
    if not 0 <= imitate < args.episodes:
        return f"--imitate must be within 0 .. {args.episodes - 1}, got {imitate}"
    if args.imitate_coef < 0:
        return f"--imitate-coef must be 0 or more, got {args.imitate_coef:g}"
    if args.eval_episodes < 1:
        return f"--eval-episodes must be 1 or more, got {args.eval_episodes}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.sumo_rl_worker:
        print(json.dumps(_sumo_rl_worker(json.loads(args.sumo_rl_worker)), default=float), flush=True)
        return 0

    from roadtwin.errors import SimulationError
    from roadtwin.workspace import Workspace

    ws = Workspace.at(args.workspace)
    cells_dir = ws.root / "bench-resco" / "cells"
    seeds = list(range(args.seeds))
    classic = [c.strip() for c in args.controllers.split(",") if c.strip()]
    rl_label = f"RoadTwin RL ({args.rl_algo})" if args.rl else None
    imitate = args.imitate if args.rl_algo == "ppo" else 0
    problem = _rl_option_problem(args, imitate) if args.rl else None
    if problem:
        print(f"resco.py: error: {problem}", file=sys.stderr)
        return 2
    base = {"seeds": seeds, "duration": args.duration}
    train_params = {**base, "episodes": args.episodes}

    jobs: list[tuple[str, str, dict[str, Any], Any]] = []
    for scenario in args.scenarios:
        for spec in classic:
            jobs.append((scenario, spec, base, partial(_classic, scenario, spec, seeds, ws, args.duration)))
        if args.sumo_rl:
            run = partial(_sumo_rl, scenario, seeds, ws, episodes=args.episodes, duration=args.duration)
            jobs.append((scenario, SUMO_RL, train_params, run))
        if rl_label:
            run = partial(
                _roadtwin_rl,
                scenario,
                seeds,
                ws,
                episodes=args.episodes,
                algo=args.rl_algo,
                duration=args.duration,
                resume=args.resume,
                imitate=imitate,
                imitate_coef=args.imitate_coef,
                eval_episodes=args.eval_episodes,
            )
            params = {**train_params, "algo": args.rl_algo}
            if args.eval_episodes != 1:  # cells of one evaluation episode keep their earlier cache key
                params["eval_episodes"] = args.eval_episodes
            if imitate:
                params.update(imitate=imitate, imitate_coef=args.imitate_coef, **IMITATION_TIMINGS)
            jobs.append((scenario, rl_label, params, run))

    results: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in args.scenarios}
    for n, (scenario, label, params, run) in enumerate(jobs, 1):
        path = _cell_path(cells_dir, scenario, label)
        cell = _load_cell(path, params) if args.resume else None
        state = "cached"
        if cell is None:
            t0 = time.perf_counter()
            failed = False
            try:
                cell = {"params": params, **run()}
            except SimulationError as exc:  # a SUMO tool failing on one network must not stop the rest
                cell, failed = {"params": params, "na": f"failed: {exc}"}, True
            cell["wall_s"] = round(time.perf_counter() - t0, 1)
            if not failed:
                _save_cell(path, cell)  # a failure is tried again by the next --resume
            state = f"{cell['wall_s']:.0f} s" + (" (failed)" if failed else "")
        results[scenario][label] = cell
        print(f"[{n}/{len(jobs)}] {scenario} · {label}: {state}", file=sys.stderr, flush=True)

    speed = None
    if args.env_speed:
        path = cells_dir / "env_speed.json"
        params = {"repeat": args.env_speed_repeat}
        speed = _load_cell(path, params) if args.resume else None
        if speed is None:
            speed = {"params": params, **_env_speed(args.env_speed_repeat)}
            _save_cell(path, speed)

    lines = [
        "# RESCO benchmark",
        "",
        f"Seeds {seeds}; training budget {args.episodes} episodes per scenario; RoadTwin RL = "
        f"{args.rl_algo if args.rl else 'off'}"
        + (
            f" ({imitate} of the episodes max-pressure demonstrations, imitated first"
            f"{f', then with a weight from {args.imitate_coef:g} falling to 0' if args.imitate_coef else ''})"
            if args.rl and imitate
            else ""
        )
        + "; SUMO with teleporting off. RESCO delay and exact delay as "
        "in REFERENCE.md (one definition for every measured row). Published rows: RESCO's paper data "
        "(SUMO 1.9; static controllers mean over episodes, learners best episode): compare controllers "
        "side by side within the measured rows.",
        "",
    ]
    for scenario, cells in results.items():
        lines += [f"## {scenario}", "", *scenario_table(scenario, cells), ""]
    if speed is not None:
        lines += [
            "## Env steps/s (libsumo, `benchmarks/env_speed.py`: 5 s decisions, random policy)",
            "",
            *speed["table"],
            "",
        ]
    lines += goals_section(results, rl_label, args.episodes, speed, args.duration)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
