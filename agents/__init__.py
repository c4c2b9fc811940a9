"""Signal controllers behind one interface, their evaluation, and (with the ``rl`` extra) RL training.

Controllers are named by spec strings (``fixed``, ``webster``, ``actuated``, ``max-pressure``,
``max-pressure-naive``, ``rl:PATH``) and built with :func:`make_controller`; any of them runs on any
scenario through :func:`evaluate` or ``roadtwin agents eval``. Importing this package loads no torch,
stable-baselines3 or Gymnasium.
"""

from roadtwin.agents.actuated import Actuated, write_actuated_programs
from roadtwin.agents.base import (
    CONTROLLERS,
    SignalController,
    check_controller,
    controller_names,
    make_controller,
    register_controller,
)
from roadtwin.agents.evaluate import (
    METRIC_COLUMNS,
    RESULT_COLUMNS,
    EvaluationResult,
    QueueProbe,
    evaluate,
    seed_list,
)
from roadtwin.agents.fixed import FixedTime
from roadtwin.agents.max_pressure import MaxPressure, NaiveMaxPressure
from roadtwin.agents.scenarios import ResolvedScenario, resolve_scenario, scenario_names
from roadtwin.agents.webster import Webster

__all__ = [
    "CONTROLLERS",
    "METRIC_COLUMNS",
    "RESULT_COLUMNS",
    "Actuated",
    "EvaluationResult",
    "FixedTime",
    "MaxPressure",
    "NaiveMaxPressure",
    "QueueProbe",
    "ResolvedScenario",
    "SignalController",
    "Webster",
    "check_controller",
    "controller_names",
    "evaluate",
    "make_controller",
    "register_controller",
    "resolve_scenario",
    "scenario_names",
    "seed_list",
    "write_actuated_programs",
]
