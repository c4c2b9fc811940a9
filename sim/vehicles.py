"""Vehicle types: the fleet mix as SUMO ``vType`` definitions and a ``vTypeDistribution``.

Four kinds of vehicle share the road: human-driven cars, buses and trucks (SUMO's default Krauss
car-following model with the documented defaults of their ``vClass``) and automated vehicles
(robotaxis) on SUMO's ``ACC`` or ``CACC`` car-following model. Every vType is scaled by the
scenario's weather preset (:mod:`roadtwin.sim.weather`). The trips draw their type from the
distribution :data:`MIX_ID`; ``duarouter`` resolves the draw per vehicle, so each vehicle is routed
for its own ``vClass``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from roadtwin._io import write_text
from roadtwin.sim.weather import WeatherEffect, weather_effect

__all__ = [
    "AV_MODELS",
    "AV_TIME_GAP",
    "BASE_TYPES",
    "EMERGENCY_DECEL",
    "KINDS",
    "MIX_ID",
    "BaseType",
    "vtype_attributes",
    "write_vtypes",
]

MIX_ID = "mix"
EMERGENCY_DECEL = 9.0  # SUMO's passenger emergencyDecel (m/s^2)
KINDS: tuple[str, ...] = ("car", "bus", "truck", "av")
AV_MODELS: tuple[str, ...] = ("ACC", "CACC")
# Desired time gap (s) of automated vehicles. The field tests behind SUMO's models ran CACC strings at
# 0.6 s and ACC at 1.0-1.1 s (Milanes & Shladover 2014; Xiao, Wang & van Arem 2017), but SUMO's
# car following is only collision-free for gaps >= the step length: at the default 1 s step, a 0.6 s
# CACC fleet crashed 151 times in 15 min on a test grid and a 1.0 s one never. 1.0 s is therefore the
# default; smaller gaps need a scenario ``step_length`` <= the gap. A CACC vehicle behind a non-CACC
# leader falls back to ACC with ``tauCACCToACC`` (SUMO default 1.0 s).
AV_TIME_GAP: dict[str, float] = {"CACC": 1.0, "ACC": 1.0}


@dataclass(frozen=True)
class BaseType:
    """Clear-weather parameters of one kind of vehicle (SUMO's documented ``vClass`` defaults)."""

    vclass: str
    length: float
    accel: float
    decel: float
    tau: float
    min_gap: float
    speed_dev: float
    sigma: float
    color: str


# SUMO "Vehicle Type Parameter Defaults" (passenger, bus, truck); tau 1 s and sigma 0.5 are Krauss's.
BASE_TYPES: dict[str, BaseType] = {
    "car": BaseType("passenger", 5.0, 2.6, 4.5, 1.0, 2.5, 0.1, 0.5, "yellow"),
    "bus": BaseType("bus", 12.0, 1.2, 4.0, 1.0, 2.5, 0.1, 0.5, "blue"),
    "truck": BaseType("truck", 7.1, 1.3, 4.0, 1.0, 2.5, 0.05, 0.5, "grey"),
    # Robotaxis hold the speed limit (no spread) and do not dawdle.
    "av": BaseType("passenger", 5.0, 2.6, 4.5, 1.0, 2.5, 0.0, 0.0, "cyan"),
}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def vtype_attributes(
    kind: str,
    *,
    weather: WeatherEffect | None = None,
    av_model: str = "CACC",
    av_time_gap: float | None = None,
    av_parameters: Mapping[str, float] | None = None,
) -> dict[str, str]:
    """Return the ``vType`` attributes of ``kind`` (``car``, ``bus``, ``truck`` or ``av``) under ``weather``.

    Parameters
    ----------
    kind
        One of :data:`KINDS`.
    weather
        The weather preset whose factors scale speed, headway, gaps and accelerations (clear if ``None``).
    av_model
        Car-following model of automated vehicles: ``"CACC"`` or ``"ACC"``.
    av_time_gap
        Desired time gap of automated vehicles in s (default :data:`AV_TIME_GAP` of the model).
    av_parameters
        Extra SUMO car-following attributes of automated vehicles (e.g. ``tauCACCToACC``).
    """
    if kind not in BASE_TYPES:
        raise KeyError(f"unknown vehicle kind {kind!r}")
    w = weather or weather_effect("clear")
    base = BASE_TYPES[kind]
    tau = base.tau
    if kind == "av":
        tau = av_time_gap if av_time_gap is not None else AV_TIME_GAP[av_model]
    attrs: dict[str, str] = {
        "id": kind,
        "vClass": base.vclass,
        "length": _fmt(base.length),
        "accel": _fmt(base.accel * w.accel),
        "decel": _fmt(base.decel * w.decel),
        "tau": _fmt(tau * w.headway),
        "minGap": _fmt(base.min_gap * w.min_gap),
        "speedFactor": _fmt(w.speed),
        "speedDev": _fmt(base.speed_dev),
        "color": base.color,
    }
    if kind == "av":
        attrs["carFollowModel"] = av_model
        # At 1 s steps SUMO's ACC/CACC brake harder than ``decel`` when a gap closes fast; followers must
        # expect that (they size their gap by the leader's apparentDecel) or they run into the AV.
        attrs["apparentDecel"] = _fmt(EMERGENCY_DECEL)
        for key, value in (av_parameters or {}).items():
            attrs[key] = _fmt(float(value))
    else:
        attrs["sigma"] = _fmt(base.sigma)
    return attrs


def write_vtypes(
    path: str | os.PathLike[str],
    *,
    shares: Mapping[str, float],
    weather: WeatherEffect | None = None,
    av_model: str = "CACC",
    av_time_gap: float | None = None,
    av_parameters: Mapping[str, float] | None = None,
) -> Path:
    """Write the vTypes and the ``vTypeDistribution`` :data:`MIX_ID` as a SUMO additional file.

    Parameters
    ----------
    path
        Output ``.add.xml`` (written atomically).
    shares
        Share of each kind in :data:`KINDS` (they sum to 1; kinds with share 0 are defined but never drawn).
    weather, av_model, av_time_gap, av_parameters
        As in :func:`vtype_attributes`.

    Returns
    -------
    Path
        ``path``.
    """
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<additional>"]
    w = weather or weather_effect("clear")
    lines.append(
        f"    <!-- weather: {w.condition}{'/' + w.intensity if w.intensity else ''} ({w.source}) -->"
    )
    for kind in KINDS:
        attrs = vtype_attributes(
            kind, weather=w, av_model=av_model, av_time_gap=av_time_gap, av_parameters=av_parameters
        )
        body = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        if kind == "av":
            lines.append(f"    <vType {body}>")
            lines.append('        <param key="automated" value="true"/>')
            lines.append('        <param key="role" value="robotaxi"/>')
            lines.append("    </vType>")
        else:
            lines.append(f"    <vType {body}/>")
    drawn = [k for k in KINDS if shares.get(k, 0.0) > 0]
    probs = " ".join(_fmt(shares[k]) for k in drawn)
    lines.append(f'    <vTypeDistribution id="{MIX_ID}" vTypes="{" ".join(drawn)}" probabilities="{probs}"/>')
    lines.append("</additional>")
    return write_text(path, "\n".join(lines) + "\n")
