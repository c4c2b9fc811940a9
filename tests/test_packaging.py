"""The package's shape: layout, extras mirrored for conda, imports that stay light."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_layout_has_every_area() -> None:
    for area in ("maps", "sim", "twin", "agents", "dashboards", "datasets", "tests", "benchmarks"):
        assert (ROOT / area).is_dir(), area
    for f in ("environment.yml", "pyproject.toml", "Makefile", "README.md", ".ci/run"):
        assert (ROOT / f).is_file(), f


def test_environment_yml_mirrors_every_pip_requirement() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra, reqs in project["optional-dependencies"].items():
        if extra not in ("all", "bench"):  # bench is a benchmark-only peer
            wanted |= {_name(r) for r in reqs}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have: set[str] = set()
    for dep in env["dependencies"]:
        for item in dep["pip"] if isinstance(dep, dict) else [dep]:
            name = _name(item.split("=")[0] if "=" in item and "==" not in item else item)
            have.add({"python-duckdb": "duckdb"}.get(name, name))
    assert wanted - have == set(), f"missing from environment.yml: {sorted(wanted - have)}"


def test_sumo_wheels_are_pinned_together() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {
        _name(d): d.split("==")[1]
        for d in deps
        if _name(d) in ("eclipse-sumo", "libsumo", "sumolib", "traci")
    }
    assert len(pins) == 4 and len(set(pins.values())) == 1, pins


def test_importing_maps_and_sim_stays_light() -> None:
    code = (
        "import sys, roadtwin.maps, roadtwin.sim, roadtwin.cli;"
        "heavy = [m for m in ('torch', 'dash', 'ray', 'stable_baselines3', 'geopandas') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy imports at import time: {out.stdout}"
