"""The one CLI: help everywhere, one-line errors with exit code 2 for bad options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from roadtwin.cli import main

COMMANDS = [
    [], ["demo"], ["maps"], ["maps", "build"], ["maps", "export"], ["sim"], ["sim", "run"],
    ["agents"], ["agents", "eval"], ["agents", "train"], ["twin"], ["twin", "sense"], ["twin", "ingest"], ["twin", "estimate"], ["twin", "calibrate"],
    ["twin", "forecast", "generate"], ["twin", "forecast", "train"], ["twin", "forecast", "eval"], ["dash"],
]  # fmt: skip


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "roadtwin")
def test_every_command_has_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roadtwin.cli", *args], capture_output=True, text=True)


def test_bad_config_field_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "opts.yaml"
    cfg.write_text("scenario: x.yaml\nbackend: carla\n")
    out = _run("sim", "run", "--config", str(cfg))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "opts.yaml" in lines[0] and "backend" in lines[0] and "Traceback" not in out.stderr


def test_unknown_config_field_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "opts.yaml"
    cfg.write_text("scenario: x.yaml\nspeed_up: 3\n")
    out = _run("sim", "run", "--config", str(cfg))
    assert out.returncode == 2
    assert "speed_up" in out.stderr and "unknown field" in out.stderr


def test_missing_scenario_file_is_one_line_exit_2(tmp_path: Path) -> None:
    out = _run("sim", "run", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "nope.yaml" in out.stderr


GOOD = """name: t
network: yizhuang
begin: "07:45"
end: "07:50"
demand: {veh_per_hour: 1000}
"""

BAD_SCENARIOS = {
    "wrong type": (GOOD.replace("{veh_per_hour: 1000}", "{veh_per_hour: lots}"), "demand.veh_per_hour"),
    "unknown field": (GOOD + "colour: red\n", "colour"),
    "negative demand": (GOOD.replace("1000", "-5"), "demand.veh_per_hour"),
    "end before begin": (GOOD.replace('end: "07:50"', 'end: "07:00"'), "end"),
    "incident on a missing edge": (
        GOOD + 'incidents: [{edge: "no_such_edge", begin: "07:46", end: "07:48"}]\n',
        "incidents.0.edge",
    ),
    "missing network file": (GOOD.replace("network: yizhuang", "network: nowhere.net.xml"), "network"),
    "malformed yaml": (GOOD + "demand: [unclosed\n", "line"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_bad_scenario_is_one_line_exit_2(case: str, tmp_path: Path) -> None:
    text, field = BAD_SCENARIOS[case]
    path = tmp_path / "bad_scenario.yaml"
    path.write_text(text)
    out = _run("sim", "run", str(path), "--workspace", str(tmp_path / "ws"), "--no-progress")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "bad_scenario.yaml" in lines[0] and field in lines[0] and "expected" in lines[0]
    assert "Traceback" not in out.stderr


def test_unknown_command_is_a_usage_error_not_a_traceback() -> None:
    out = _run("nosuchcmd")
    assert out.returncode == 2
    assert "No such command" in out.stderr and "Traceback" not in out.stderr
