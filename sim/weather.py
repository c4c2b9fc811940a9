"""Weather presets: factors on driver behaviour (SUMO vType parameters) and on sensors.

Each preset is a :class:`WeatherEffect`: multiplicative factors on the desired speed (``speedFactor``),
the desired time headway (``tau``), the standstill gap (``minGap``), acceleration and comfortable
deceleration, plus factors on sensor range and noise for the sensor models. The driver factors are
chosen so that two published, cited figures are reproduced in SUMO:

- the **free-flow speed** factor is applied directly to ``speedFactor``;
- ``accel``/``decel`` are lowered on wet and snowy pavement (an assumption: lower friction, gentler
  starts and stops; unchanged in fog) and ``minGap`` is kept, since jam density does not change
  with weather [Hranac2006];
- the **capacity** (saturation-flow) factor is then reproduced by solving for the ``tau`` factor:
  ``tests/test_weather.py`` measures the queue-discharge saturation flow (HCM method, headways from
  the fifth queued vehicle on) of a signalised approach in SUMO under each preset and checks it
  against the cited figure. Clear weather discharges about 1,870 veh/h/lane (HCM base: 1,900).

Sources
-------
[Durban2020]
    Durban, "Capacity loss at signalised intersections in rain", The Open Transportation Journal
    14:214 (2020), doi:10.2174/1874447802014010214. Through movements lose 4.25 % (light rain,
    < 2.5 mm/h), 9.18 % (moderate) and 11.53 % (heavy, 10-50 mm/h) of their capacity; turning
    movements 7.38 / 14.3 / 19.15 %.
[Hranac2006]
    Hranac, Sterzin, Krechmer, Rakha, Farzaneh, "Empirical Studies on Traffic Flow in Inclement
    Weather", FHWA-HOP-07-073 (2006), with Rakha et al., TRR 2071 (2008). Free-flow speed falls by
    2-3.6 % in light rain and 6-9 % at 1.6 cm/h; snow cuts free-flow speed and capacity more than
    rain; jam density is unaffected.
[HCM2010]
    Highway Capacity Manual 2010, Exhibit 10-15 (built on the FHWA study above; reproduced in
    FHWA-HOP-13-042, Table 33): capacity falls by 8.66 % in snow of 0.05-0.10 in/h, 11.04 % at
    0.10-0.50 in/h and 22.43 % above 0.50 in/h (range 19.5-27.8 %). These are freeway figures;
    no signalised-intersection figure for snow is cited, so they are used as they are.
[Agarwal2005]
    Agarwal, Maze, Souleyrette, "Impact of Weather on Urban Freeway Traffic Flow Characteristics and
    Facility Capacity", Mid-Continent Transportation Research Symposium (2005): low visibility
    (< 0.25 mile) cuts capacity by 12 % and speed by 10-12 %; heavy snow (> 0.5 in/h) cuts speed by
    11-15 %.
[Sensors]
    The sensor factors are engineering assumptions, in the direction reported for automotive lidar
    and cameras by Rasshofer, Spies & Spies, Adv. Radio Sci. 9:49 (2011) and Goodin et al.,
    Electronics 8:89 (2019) (range shrinks and noise grows with rain rate and fog density). They
    are placeholders until a sensor model is calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONDITIONS",
    "DEFAULT_INTENSITY",
    "INTENSITIES",
    "WEATHER_TABLE",
    "Condition",
    "Intensity",
    "WeatherEffect",
    "weather_effect",
]

Condition = Literal["clear", "rain", "snow", "fog"]
Intensity = Literal["light", "moderate", "heavy"]

CONDITIONS: tuple[str, ...] = ("clear", "rain", "snow", "fog")


@dataclass(frozen=True)
class WeatherEffect:
    """Multiplicative factors of one weather preset (1.0 = clear weather).

    Attributes
    ----------
    condition, intensity
        The preset (``intensity`` is ``None`` for clear weather).
    speed
        Factor on the desired speed (the mean of the vType ``speedFactor``); the cited free-flow
        speed factor.
    headway
        Factor on ``tau`` (desired time headway; the time gap of ACC/CACC vehicles).
    min_gap
        Factor on ``minGap`` (gap at standstill).
    accel, decel
        Factors on ``accel`` and on the comfortable ``decel``.
    capacity
        The cited capacity / saturation-flow factor the driver factors are tuned to reproduce.
    sensor_range, sensor_noise
        Factors on a sensor's nominal detection range and noise standard deviation (assumed).
    source
        The citation keys (see the module docstring) behind the figures.
    """

    condition: str
    intensity: str | None
    speed: float
    headway: float
    min_gap: float
    accel: float
    decel: float
    capacity: float
    sensor_range: float
    sensor_noise: float
    source: str


# ``headway`` is solved (bisection over SUMO runs, 3 seeds) so that the simulated saturation flow falls
# to ``capacity`` x clear within 0.5 %; ``speed`` is the cited free-flow speed factor: rain 3 % and 8 %
# [Hranac2006: 2-3.6 %, 6-9 %], heavy snow 13 % and fog 11 % [Agarwal2005: 11-15 %, 10-12 %]. Light and
# moderate snow lie between heavy rain and heavy snow (snow slows drivers more than rain [Hranac2006]).
# fmt: off
_ROWS: list[tuple[str, str | None, float, float, float, float, float, float, float, float, str]] = [
    # condition, intensity,  speed, headway, min_gap, accel, decel, capacity, s.range, s.noise, source
    ("clear", None,          1.00,  1.000,   1.0,     1.00,  1.00,  1.0000,   1.00,    1.0,     "baseline"),
    ("rain",  "light",       0.97,  1.065,   1.0,     0.95,  0.95,  0.9575,   0.95,    1.1,
     "Durban2020 (capacity), Hranac2006 (speed), Sensors"),
    ("rain",  "moderate",    0.95,  1.160,   1.0,     0.90,  0.90,  0.9082,   0.85,    1.3,
     "Durban2020 (capacity), Hranac2006 (speed, interpolated), Sensors"),
    ("rain",  "heavy",       0.92,  1.200,   1.0,     0.85,  0.85,  0.8847,   0.70,    1.6,
     "Durban2020 (capacity), Hranac2006 (speed), Sensors"),
    ("snow",  "light",       0.92,  1.120,   1.0,     0.85,  0.80,  0.9134,   0.90,    1.2,
     "HCM2010 (capacity), speed interpolated (see above), Sensors"),
    ("snow",  "moderate",    0.89,  1.150,   1.0,     0.80,  0.75,  0.8896,   0.75,    1.5,
     "HCM2010 (capacity), speed interpolated (see above), Sensors"),
    ("snow",  "heavy",       0.87,  1.480,   1.0,     0.70,  0.65,  0.7757,   0.60,    2.0,
     "HCM2010 (capacity), Agarwal2005 (speed), Sensors"),
    ("fog",   "moderate",    0.89,  1.150,   1.0,     1.00,  1.00,  0.8800,   0.50,    1.5,
     "Agarwal2005 (capacity and speed), Sensors"),
]
# fmt: on
WEATHER_TABLE: dict[tuple[str, str | None], WeatherEffect] = {(r[0], r[1]): WeatherEffect(*r) for r in _ROWS}

INTENSITIES: dict[str, tuple[str, ...]] = {
    "clear": (),
    "rain": ("light", "moderate", "heavy"),
    "snow": ("light", "moderate", "heavy"),
    "fog": ("moderate",),
}
DEFAULT_INTENSITY: dict[str, str | None] = {
    "clear": None,
    "rain": "moderate",
    "snow": "moderate",
    "fog": "moderate",
}


def weather_effect(condition: str, intensity: str | None = None) -> WeatherEffect:
    """Return the preset for ``condition`` at ``intensity`` (its default intensity when ``None``).

    Raises
    ------
    KeyError
        For an unknown condition or an intensity the condition does not have.
    """
    if condition not in INTENSITIES:
        raise KeyError(f"unknown weather condition {condition!r}")
    if intensity is not None and intensity not in INTENSITIES[condition]:
        raise KeyError(f"weather {condition!r} has no intensity {intensity!r}")
    return WEATHER_TABLE[(condition, intensity if intensity is not None else DEFAULT_INTENSITY[condition])]
