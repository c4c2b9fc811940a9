"""Scenarios: a YAML file validated by pydantic, describing one simulated time window of the zone.

A scenario names a network (the built-in ``yizhuang`` zone or a ``.net.xml`` file), a time window,
a time-of-day vehicle demand, the fleet mix (cars, buses, trucks and automated robotaxis on SUMO's
ACC or CACC model), walkers, a weather preset, incidents and a seed. :func:`load_scenario` turns any
mistake in the file into one :class:`~roadtwin.errors.ScenarioError` line naming the file, the field
(``incidents.0.begin``) and what was expected; :func:`roadtwin.sim.inputs.prepare_inputs` then checks
it against the network and writes SUMO's inputs.

Times are ``"HH:MM"``, ``"HH:MM:SS"`` or seconds since midnight (``25200`` is 07:00); distances
are in metres and rates per hour. A minimal scenario::

    name: my_peak
    network: yizhuang            # or a path to a .net.xml, relative to this file
    begin: "07:00"
    end: "08:00"
    demand: {veh_per_hour: 3000}

See ``sim/scenarios/yizhuang_morning_peak.yaml`` for every field in use.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from roadtwin.config import StrictModel, read_yaml_mapping, validation_error
from roadtwin.errors import ScenarioError
from roadtwin.sim.vehicles import AV_TIME_GAP
from roadtwin.sim.weather import DEFAULT_INTENSITY, INTENSITIES

__all__ = [
    "BUILTIN_NETWORK",
    "Automation",
    "Demand",
    "FieldProblem",
    "Incident",
    "Pedestrians",
    "ProfilePoint",
    "Scenario",
    "VehicleMix",
    "Weather",
    "builtin_scenario",
    "builtin_scenarios",
    "format_time",
    "load_scenario",
    "parse_time",
]

BUILTIN_NETWORK = "yizhuang"
_SCENARIOS_DIR = Path(__file__).parent / "scenarios"
_TIME = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d(?:\.\d+)?))?$")


def _zones() -> list[str]:
    from roadtwin.maps import list_zones

    return list_zones()


class FieldProblem(ValueError):
    """A validation failure that knows which field (below the validator's own) is wrong.

    :func:`load_scenario` reads ``loc``, ``expected`` and ``got`` to name the exact field, e.g.
    ``incidents.0.begin`` from a check made on the whole scenario.
    """

    def __init__(self, expected: str, *, loc: tuple[str | int, ...] = (), got: object = None) -> None:
        self.expected = expected
        self.loc = loc
        self.got = got
        where = ".".join(str(p) for p in loc)
        super().__init__(
            f"{where + ': ' if where else ''}{expected}" + (f", got {got!r}" if got is not None else "")
        )


def parse_time(value: Any) -> float:
    """Parse ``"HH:MM"``, ``"HH:MM:SS"`` or a number of seconds (>= 0) into seconds."""
    if isinstance(value, bool):
        raise ValueError("a time as HH:MM[:SS] or seconds >= 0")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a time as HH:MM[:SS] or seconds >= 0")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        m = _TIME.match(text)
        if m:
            return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3] or 0)
        try:
            return parse_time(float(text))
        except ValueError:
            pass
    raise ValueError("a time as HH:MM[:SS] or seconds >= 0")


def format_time(seconds: float) -> str:
    """Format seconds as ``"HH:MM"`` (or ``"HH:MM:SS[.sss]"`` when there are seconds)."""
    millis = round(seconds * 1000)
    whole, frac = divmod(millis, 1000)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if frac:
        return f"{h:02d}:{m:02d}:{s:02d}.{frac:03d}".rstrip("0")
    return f"{h:02d}:{m:02d}" if s == 0 else f"{h:02d}:{m:02d}:{s:02d}"


def _non_negative(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("a number >= 0")
    return value


def _share(value: float) -> float:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError("a share between 0 and 1")
    return value


Time = Annotated[float, BeforeValidator(parse_time), PlainSerializer(format_time, return_type=str)]
NonNegative = Annotated[float, AfterValidator(_non_negative)]
Share = Annotated[float, AfterValidator(_share)]


class ProfilePoint(StrictModel):
    """One point of the time-of-day demand profile."""

    at: Time
    """Time of day of this point."""
    factor: NonNegative
    """Demand at ``at`` as a multiple of the base rate (``veh_per_hour``)."""


class Demand(StrictModel):
    """Vehicle demand over the window (give ``veh_per_hour`` or ``total_vehicles``, not both).

    The rate of each interval is ``base x factor`` at the interval's midpoint, the factor
    interpolated linearly between the profile's points (held constant outside them). With
    ``total_vehicles`` the base is scaled so the window holds that many vehicles.
    """

    veh_per_hour: NonNegative | None = None
    """Vehicles per hour entering the simulation where the profile's factor is 1."""
    total_vehicles: NonNegative | None = None
    """Vehicles over the whole window (alternative to ``veh_per_hour``)."""
    profile: list[ProfilePoint] = Field(default_factory=list)
    """Time-of-day factors in increasing time; empty means flat."""
    interval: Annotated[float, Field(gt=0)] = 900.0
    """Length in s of the intervals the window is cut into (each has its own rate)."""
    fringe_factor: NonNegative = 5.0
    """Weight of the network's boundary edges as origins and destinations (through and commuter traffic)."""
    min_distance: NonNegative = 500.0
    """Minimum straight-line distance in m between a trip's origin and destination."""

    @field_validator("profile")
    @classmethod
    def _increasing(cls, profile: list[ProfilePoint]) -> list[ProfilePoint]:
        for i in range(1, len(profile)):
            if profile[i].at <= profile[i - 1].at:
                raise FieldProblem(
                    f"a time after the previous point ({format_time(profile[i - 1].at)})",
                    loc=(i, "at"),
                    got=format_time(profile[i].at),
                )
        return profile

    @model_validator(mode="after")
    def _one_level(self) -> Demand:
        if (self.veh_per_hour is None) == (self.total_vehicles is None):
            raise FieldProblem("exactly one of veh_per_hour or total_vehicles")
        return self

    def points(self) -> list[tuple[float, float]]:
        """Return the profile as ``(time_s, factor)`` pairs."""
        return [(p.at, p.factor) for p in self.profile]


class VehicleMix(StrictModel):
    """Shares of the fleet (each between 0 and 1, summing to 1)."""

    car: Share = 0.80
    """Human-driven passenger cars (SUMO Krauss model)."""
    bus: Share = 0.03
    """City buses (vClass bus)."""
    truck: Share = 0.07
    """Trucks (vClass truck)."""
    av: Share = 0.10
    """Automated vehicles (robotaxis) on the ``automation`` car-following model."""

    @model_validator(mode="after")
    def _sums_to_one(self) -> VehicleMix:
        total = self.car + self.bus + self.truck + self.av
        if abs(total - 1.0) > 1e-6:
            raise FieldProblem("shares car + bus + truck + av that sum to 1", got=round(total, 6))
        return self

    def shares(self) -> dict[str, float]:
        """Return the shares by kind."""
        return {"car": self.car, "bus": self.bus, "truck": self.truck, "av": self.av}


class Automation(StrictModel):
    """How the automated vehicles drive."""

    model: Literal["CACC", "ACC"] = "CACC"
    """SUMO car-following model: ``CACC`` (cooperative, falls back to ACC behind human drivers) or ``ACC``."""
    time_gap: Annotated[float, Field(gt=0)] | None = None
    """Desired time gap in s (default 1.0 s; SUMO's car following is not collision-free below ``step_length``)."""
    parameters: dict[str, float] = Field(default_factory=dict)
    """Extra vType attributes of the model (e.g. ``tauCACCToACC``, ``speedControlGainCACC``)."""

    def effective_time_gap(self) -> float:
        """Return the time gap in s, the model's default when not given."""
        return self.time_gap if self.time_gap is not None else AV_TIME_GAP[self.model]


class Pedestrians(StrictModel):
    """People walking across the zone (they need sidewalks and crossings in the network)."""

    per_hour: NonNegative = 0.0
    """Persons starting a walk per hour."""
    min_distance: NonNegative = 100.0
    """Minimum straight-line length of a walk in m."""
    max_distance: NonNegative = 1500.0
    """Maximum straight-line length of a walk in m."""

    @model_validator(mode="after")
    def _ordered(self) -> Pedestrians:
        if self.max_distance <= self.min_distance:
            raise FieldProblem(
                f"a distance above min_distance ({self.min_distance:g} m)",
                loc=("max_distance",),
                got=self.max_distance,
            )
        return self


class Weather(StrictModel):
    """A weather preset (:mod:`roadtwin.sim.weather`); a bare string (``weather: rain``) also works."""

    condition: Literal["clear", "rain", "snow", "fog"] = "clear"
    """The weather."""
    intensity: Literal["light", "moderate", "heavy"] | None = None
    """Its intensity (default ``moderate``; rain and snow have all three, fog only ``moderate``)."""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"condition": data} if isinstance(data, str) else data

    @field_validator("intensity")
    @classmethod
    def _known(cls, intensity: str | None, info: ValidationInfo) -> str | None:
        condition = info.data.get("condition")
        if intensity is not None and condition in INTENSITIES and intensity not in INTENSITIES[condition]:
            allowed = ", ".join(INTENSITIES[condition]) or "none"
            raise ValueError(f"an intensity of {condition} ({allowed})")
        return intensity

    def effective_intensity(self) -> str | None:
        """Return the intensity, the condition's default when not given."""
        return self.intensity if self.intensity is not None else DEFAULT_INTENSITY[self.condition]


class Incident(StrictModel):
    """Lanes blocked, or a whole road closed, on one edge from ``begin`` to ``end``."""

    edge: Annotated[str, Field(min_length=1)]
    """Edge id (``"86_87"`` in the zone: from junction 86 to junction 87)."""
    lanes: list[Annotated[int, Field(ge=0)]] | Literal["all"] = "all"
    """Blocked lane indices (SUMO's: 0 is the rightmost lane, the sidewalk where there is one) or ``all``."""
    begin: Time
    """When the lanes close."""
    end: Time
    """When they reopen."""
    before_end: NonNegative = 50.0
    """Blocked lanes: distance in m from the blockage to the end of the edge (the stop line at a signal)."""
    description: str = ""
    """Free text (what happened)."""

    @field_validator("lanes")
    @classmethod
    def _distinct(cls, lanes: list[int] | str) -> list[int] | str:
        if isinstance(lanes, list):
            if not lanes:
                raise ValueError("a non-empty list of lane indices, or 'all'")
            if len(set(lanes)) != len(lanes):
                raise ValueError("distinct lane indices")
        return lanes

    @field_validator("end")
    @classmethod
    def _after_begin(cls, end: float, info: ValidationInfo) -> float:
        begin = info.data.get("begin")
        if begin is not None and end <= begin:
            raise ValueError(f"a time after begin ({format_time(begin)})")
        return end


class Scenario(StrictModel):
    """One simulated time window of a network: demand, fleet, walkers, weather, incidents and seed."""

    name: Annotated[str, Field(min_length=1)]
    """Short name, used in run ids."""
    description: str = ""
    """Free text."""
    network: str = BUILTIN_NETWORK
    """A built-in zone (``yizhuang``) or the path of a ``.net.xml`` (relative to the YAML file)."""
    begin: Time
    """Start of the simulated window."""
    end: Time
    """End of the simulated window."""
    seed: Annotated[int, Field(ge=0)] = 42
    """Seed of the demand draws and of SUMO; the same seed gives the same run."""
    step_length: Annotated[float, Field(gt=0, le=1)] = 1.0
    """SUMO time step in s (at most 1 s, the human drivers' ``tau``: SUMO needs tau >= step for safe following)."""
    demand: Demand
    """Vehicle demand."""
    vehicle_mix: VehicleMix = Field(default_factory=VehicleMix)
    """Fleet shares."""
    automation: Automation = Field(default_factory=Automation)
    """Car following of the automated vehicles."""
    pedestrians: Pedestrians = Field(default_factory=Pedestrians)
    """Walkers."""
    weather: Weather = Field(default_factory=Weather)
    """Weather preset."""
    incidents: list[Incident] = Field(default_factory=list)
    """Lane blockages and road closures."""

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("network")
    @classmethod
    def _network_kind(cls, network: str) -> str:
        if not network.endswith((".net.xml", ".net.xml.gz")) and network not in _zones():
            raise ValueError(f"a built-in zone ({', '.join(_zones())}) or the path of a .net.xml file")
        return network

    @field_validator("end")
    @classmethod
    def _after_begin(cls, end: float, info: ValidationInfo) -> float:
        begin = info.data.get("begin")
        if begin is not None and end <= begin:
            raise ValueError(f"a time after begin ({format_time(begin)})")
        return end

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        window = f"{format_time(self.begin)}-{format_time(self.end)}"
        for i, inc in enumerate(self.incidents):
            if not self.begin <= inc.begin < self.end:
                raise FieldProblem(
                    f"a time inside the scenario window {window}",
                    loc=("incidents", i, "begin"),
                    got=format_time(inc.begin),
                )
            if inc.end > self.end:
                raise FieldProblem(
                    f"a time inside the scenario window {window}",
                    loc=("incidents", i, "end"),
                    got=format_time(inc.end),
                )
        gap = self.automation.effective_time_gap()
        if self.vehicle_mix.av > 0 and gap < self.step_length:
            raise FieldProblem(
                f"a time gap >= step_length ({self.step_length:g} s)", loc=("automation", "time_gap"), got=gap
            )
        return self

    @property
    def begin_s(self) -> float:
        """Start of the window in s since midnight."""
        return self.begin

    @property
    def end_s(self) -> float:
        """End of the window in s since midnight."""
        return self.end

    @property
    def source(self) -> Path | None:
        """The YAML file this scenario was loaded from (not part of the dump)."""
        return self._source

    @property
    def uses_builtin_network(self) -> bool:
        """Whether ``network`` names a built-in zone rather than a file."""
        return not self.network.endswith((".net.xml", ".net.xml.gz"))


def _scenario_error(exc: ValidationError, *, path: str | os.PathLike[str] | None) -> ScenarioError:
    first = exc.errors(include_url=False)[0]
    problem = (first.get("ctx") or {}).get("error")
    if isinstance(problem, FieldProblem):
        field = ".".join(str(p) for p in (*first["loc"], *problem.loc)) or None
        return ScenarioError(path=path, field=field, expected=problem.expected, got=problem.got)
    err = validation_error(exc, path=path, error=ScenarioError)
    assert isinstance(err, ScenarioError)
    return err


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Load and validate a scenario YAML file.

    A relative ``network`` path is resolved against the file's folder and must exist.

    Raises
    ------
    ScenarioError
        One line naming the file, the field and what was expected.
    """
    p = Path(path)
    data = read_yaml_mapping(p, error=ScenarioError)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _scenario_error(exc, path=p) from None
    if not scenario.uses_builtin_network:
        net = Path(scenario.network).expanduser()
        if not net.is_absolute():
            net = (p.parent / net).resolve()
        if not net.is_file():
            raise ScenarioError(
                path=p, field="network", expected="an existing .net.xml file", got=scenario.network
            )
        scenario.network = str(net)
    scenario._source = p
    return scenario


def builtin_scenarios() -> list[str]:
    """Return the names of the packaged scenarios."""
    return sorted(f.stem for f in _SCENARIOS_DIR.glob("*.yaml"))


def builtin_scenario(name: str = "yizhuang_morning_peak") -> Path:
    """Return the path of the packaged scenario ``name``.

    Raises
    ------
    ScenarioError
        When there is no such built-in scenario.
    """
    path = _SCENARIOS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ScenarioError(
            path=None,
            field="scenario",
            expected=f"a built-in scenario ({', '.join(builtin_scenarios())})",
            got=name,
        )
    return path
