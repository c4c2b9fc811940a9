"""Scenario specs of controller evaluation: a RESCO benchmark name, a built-in scenario or a YAML file.

:func:`resolve_scenario` turns a spec string into a :class:`ResolvedScenario` that can make a run's inputs
for any seed:

- one of RESCO's six city scenarios (``cologne1`` ... ``ingolstadt21``): the ``sumo-rl`` wheel's network
  and routes over RESCO's one-hour window, the seed going to SUMO's ``--seed`` (RESCO's "new seed each
  episode");
- ``zone`` (the built-in Yizhuang morning peak), any built-in scenario name, or a scenario YAML file: the
  scenario on its network, the seed replacing the scenario's (demand draws and SUMO alike).

``duration_s`` shortens the window to its first seconds (quick looks and tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadtwin.errors import ScenarioError
from roadtwin.sim.inputs import SimInputs
from roadtwin.workspace import Workspace

__all__ = ["ZONE_SCENARIO", "ResolvedScenario", "resolve_scenario", "scenario_names"]

#: The scenario ``zone`` stands for: the built-in Yizhuang morning peak.
ZONE_SCENARIO = "yizhuang_morning_peak"


@dataclass(frozen=True)
class ResolvedScenario:
    """A scenario ready to run with any seed.

    Attributes
    ----------
    name
        Short name used in run ids and tables.
    kind
        ``"resco"`` or ``"scenario"``.
    begin, end
        The simulated window (s).
    make_inputs
        ``make_inputs(out_dir, seed) -> SimInputs``: writes what the run needs under ``out_dir``.
    config
        Where the inputs come from, saved in each run's ``config.yaml``.
    decision_interval_s, yellow_time_s
        The benchmark's decision interval and yellow time (RESCO's 10 s and 3 s by default).
    """

    name: str
    kind: str
    begin: float
    end: float
    make_inputs: Callable[[Path, int], SimInputs] = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)
    decision_interval_s: float = 10.0
    yellow_time_s: float = 3.0


def scenario_names() -> list[str]:
    """Scenario names :func:`resolve_scenario` accepts besides YAML paths."""
    from roadtwin.sim.resco import RESCO_SCENARIOS
    from roadtwin.sim.scenario import builtin_scenarios

    return [*RESCO_SCENARIOS, "zone", *builtin_scenarios()]


def _window(begin: float, end: float, duration_s: float | None) -> tuple[float, float]:
    if duration_s is None:
        return begin, end
    if duration_s <= 0:
        raise ScenarioError(
            path=None, field="duration_s", expected="a positive number of seconds", got=duration_s
        )
    return begin, min(end, begin + duration_s)


def _resco(name: str, *, duration_s: float | None) -> ResolvedScenario:
    from roadtwin.sim.resco import RESCO_SCENARIOS, resco_files

    net, routes, begin0, end0 = resco_files(name)
    begin, end = _window(begin0, end0, duration_s)
    spec = RESCO_SCENARIOS[name]

    def make(out_dir: Path, seed: int) -> SimInputs:
        out_dir.mkdir(parents=True, exist_ok=True)
        return SimInputs(
            net_file=net, route_files=(routes,), additional_files=(), begin=begin, end=end, seed=seed
        )

    return ResolvedScenario(
        name=name,
        kind="resco",
        begin=begin,
        end=end,
        make_inputs=make,
        config={"scenario": {"resco": name, "begin": begin, "end": end, "net_file": net.name}},
        decision_interval_s=float(spec.delta_time),
        yellow_time_s=float(spec.yellow_time),
    )


def _yaml(path: Path, *, workspace: Workspace, duration_s: float | None) -> ResolvedScenario:
    from roadtwin.sim.inputs import prepare_inputs
    from roadtwin.sim.run import resolve_network
    from roadtwin.sim.scenario import load_scenario

    scenario = load_scenario(path)
    begin, end = _window(scenario.begin_s, scenario.end_s, duration_s)
    if end != scenario.end_s:
        scenario = scenario.model_copy(update={"end": end})
    net_file = resolve_network(scenario, workspace=workspace)

    def make(out_dir: Path, seed: int) -> SimInputs:
        return prepare_inputs(scenario.model_copy(update={"seed": seed}), net_file=net_file, out_dir=out_dir)

    return ResolvedScenario(
        name=scenario.name,
        kind="scenario",
        begin=begin,
        end=end,
        make_inputs=make,
        config={"scenario": scenario.model_dump(mode="json")},
    )


def resolve_scenario(
    spec: str | os.PathLike[str], *, workspace: Workspace, duration_s: float | None = None
) -> ResolvedScenario:
    """Resolve a scenario spec (RESCO name, ``zone``, built-in scenario name or YAML path).

    Parameters
    ----------
    spec
        The scenario to evaluate on.
    workspace
        Where a built-in zone's network is built (once).
    duration_s
        Simulate only the first ``duration_s`` seconds of the window.

    Raises
    ------
    ScenarioError
        ``spec`` is none of the above (one line listing the names), or the YAML file is invalid.
    MissingExtraError
        A RESCO scenario without ``sumo-rl`` installed.
    """
    from roadtwin.sim.resco import RESCO_SCENARIOS
    from roadtwin.sim.scenario import builtin_scenario, builtin_scenarios

    text = str(spec)
    if text in RESCO_SCENARIOS:
        return _resco(text, duration_s=duration_s)
    if text == "zone":
        text = ZONE_SCENARIO
    if text in builtin_scenarios():
        return _yaml(builtin_scenario(text), workspace=workspace, duration_s=duration_s)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _yaml(path, workspace=workspace, duration_s=duration_s)
    raise ScenarioError(
        path=None,
        field="scenario",
        expected=f"one of {', '.join(scenario_names())} or an existing scenario .yaml file",
        got=text,
    )
