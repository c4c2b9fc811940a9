"""Smoke test of the RESCO benchmark script (classic controllers only, a shortened window)."""

from __future__ import annotations

import importlib.util

import pytest

# the RESCO networks ship in the sumo-rl wheel (bench extra); located, not imported (needs SUMO_HOME)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("sumo_rl") is None, reason="sumo-rl not installed")


def test_published_figures_cover_every_scenario(load_benchmark):
    bench = load_benchmark("resco")
    assert set(bench.PUBLISHED_DELAY) == set(bench.SCENARIOS)
    for row in bench.PUBLISHED_DELAY.values():
        learners = [row["IDQN"], row["IPPO"]]
        assert row["best learner"] == min(learners)


def test_smoke_cologne1_classic(load_benchmark, tmp_path, capsys):
    bench = load_benchmark("resco")
    out = tmp_path / "results.md"
    argv = [
        "--scenarios", "cologne1",
        "--seeds", "1",
        "--duration", "300",
        "--controllers", "fixed,webster,actuated,max-pressure",
        "--no-rl", "--no-sumo-rl", "--no-env-speed",
        "--workspace", str(tmp_path / "ws"),
        "--out", str(out),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    text = out.read_text()
    assert text in capsys.readouterr().out
    assert bench.HEADER in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    measured = {ln.split("|")[1].strip(): ln for ln in rows if "measured" in ln}
    assert set(measured) == {"fixed", "webster", "actuated", "max-pressure"}
    for line in measured.values():
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 9
        assert "±" in cells[2] and float(cells[2].split("±")[0]) >= 0
    assert "| RESCO best learner | published (SUMO 1.9) | 26.05 |" in text
    assert "## Goals" in text and "not measured (`--no-rl`)" in text
    cells = list((tmp_path / "ws" / "bench-resco" / "cells").glob("cologne1__*.json"))
    assert len(cells) == 4

    # --resume reuses the cached cells: nothing is simulated again
    def no_simulation(*args, **kwargs):
        raise AssertionError("a cached cell was simulated again")

    bench._classic = no_simulation
    assert bench.main([*argv, "--resume"]) == 0
    assert out.read_text() == text


def test_goals_say_by_how_much(load_benchmark):
    bench = load_benchmark("resco")

    def cell(delays, blocked=0, **extra):
        rows = [
            {"seed": s, "resco_delay_s": d, "exact_delay_s": d, "trip_time_s": 60.0, "wait_s": 1.0}
            | {"never_inserted": blocked, "blocked": blocked, "still_running": 0}
            for s, d in enumerate(delays)
        ]
        return {"rows": rows, **extra}

    results = {
        "cologne1": {"fixed": cell([40.0, 42.0]), "RL": cell([30.0, 32.0], episodes=100)},
        "ingolstadt1": {"fixed": cell([30.0, 30.0]), "RL": cell([20.0, 31.0], blocked=3, episodes=102)},
    }
    speed = {"ratios": {"cologne8": 2.5, "ingolstadt21": 1.5}}
    text = "\n".join(bench.goals_section(results, "RL", 100, speed, None))
    assert "RL delay 31.00 s vs published best learner 26.05 s: not met by 4.95 s (19 %)" in text
    assert "RL delay 25.50 s vs published best learner 20.90 s: not met by 4.60 s" in text
    assert "cologne1: never worse than fixed-time (same seeds, -10.00 s on average): met" in text
    assert "worse by up to 1.00 s on a seed" in text
    assert "ingolstadt1: no vehicle blocked at insertion: not met: up to 3 vehicles" in text
    assert "not met by 2.0 episodes" in text
    assert "cologne8: env steps/s 2.50x sumo-rl's (goal >= 2x): met" in text
    assert "ingolstadt21: env steps/s 1.50x sumo-rl's (goal >= 2x): not met by 0.50x" in text


@pytest.mark.parametrize("argv", [["--imitate", "100"], ["--imitate-coef", "-1"], ["--eval-episodes", "0"]])
def test_bad_rl_options_exit_2(load_benchmark, tmp_path, capsys, argv):
    bench = load_benchmark("resco")
    assert bench.main([*argv, "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"resco.py: error: {argv[0]} must") and len(err.splitlines()) == 1
    assert not (tmp_path / "r.md").exists()
