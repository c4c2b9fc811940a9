"""Scenarios, the SUMO backend, runs and their metrics, and the signal-control environments.

Importing this package is cheap: libsumo, gymnasium and pettingzoo load only when used. The
environments live in :mod:`roadtwin.sim.env` (``import roadtwin.sim.env`` registers
``roadtwin/TrafficSignal-v0`` with Gymnasium).
"""

from roadtwin.sim.backend import BACKENDS, DEFAULT_BACKEND, SumoSession, start
from roadtwin.sim.control import SignalControl
from roadtwin.sim.inputs import SimInputs, prepare_inputs
from roadtwin.sim.metrics import RunMetrics
from roadtwin.sim.run import RunResult, resolve_network, run_inputs, run_scenario, simulate
from roadtwin.sim.scenario import Scenario, builtin_scenario, builtin_scenarios, load_scenario
from roadtwin.sim.weather import WeatherEffect, weather_effect

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "RunMetrics",
    "RunResult",
    "Scenario",
    "SignalControl",
    "SimInputs",
    "SumoSession",
    "WeatherEffect",
    "builtin_scenario",
    "builtin_scenarios",
    "load_scenario",
    "prepare_inputs",
    "resolve_network",
    "run_inputs",
    "run_scenario",
    "simulate",
    "start",
    "weather_effect",
]
