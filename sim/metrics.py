"""Run metrics, one definition each (REFERENCE.md).

Per vehicle from SUMO's tripinfo (finished and, with ``--tripinfo-output.write-unfinished``, unfinished
records): trip time (``duration``), delay (``timeLoss``), waiting time, stops. Network: throughput,
vehicles still running at the end and vehicles never inserted (never silently dropped), teleports.

- **RESCO delay** = [sum over records of ``timeLoss + departDelay`` + sum over never-departed vehicles of
  ``end - scheduled depart``] / number of vehicles, where RESCO counts as never-departed only the
  scheduled vehicles departing after the latest actual departure.
- **Exact delay**: the same, with never-departed = every scheduled vehicle in the window without a record.
- **Blocked at insertion**: vehicles that waited more than :data:`BLOCKED_AFTER_S` to enter the network:
  inserted with a larger ``departDelay``, or never inserted though scheduled that long before the end
  (a vehicle due in the window's last seconds that has not entered yet is not blocked).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from lxml import etree

__all__ = [
    "BLOCKED_AFTER_S",
    "RunMetrics",
    "read_schedule",
    "read_statistics",
    "read_summary",
    "read_tripinfo",
    "summarize",
]

#: A vehicle waiting longer than this to enter the network (s) counts as blocked at insertion.
BLOCKED_AFTER_S = 60.0

_TRIP_FIELDS = {
    "depart": float,
    "departDelay": float,
    "arrival": float,
    "duration": float,
    "routeLength": float,
    "waitingTime": float,
    "waitingCount": int,
    "timeLoss": float,
}


@dataclass(frozen=True)
class RunMetrics:
    """The summary of one run (times in seconds, distances in metres)."""

    vehicles_scheduled: int
    vehicles_inserted: int
    vehicles_finished: int
    vehicles_still_running: int
    vehicles_never_inserted: int
    vehicles_blocked: int
    resco_delay_s: float
    exact_delay_s: float
    mean_trip_time_s: float
    mean_time_loss_s: float
    mean_wait_s: float
    mean_stops: float
    mean_route_length_m: float
    throughput_veh_h: float
    teleports: int
    persons: int
    persons_finished: int
    mean_person_time_loss_s: float

    def as_dict(self) -> dict[str, float | int | None]:
        """Return the metrics as a plain dict (JSON-ready, NaN as ``None``)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _iter_elements(path: str | os.PathLike[str], tags: Iterable[str]) -> Iterable[etree._Element]:
    for _, elem in etree.iterparse(str(path), events=("end",), tag=tuple(tags), huge_tree=True):
        yield elem
        if elem.getparent() is not None and elem.tag in ("tripinfo", "personinfo", "vehicle", "trip"):
            elem.clear(keep_tail=False)


def read_tripinfo(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a tripinfo file into (vehicles, persons) frames; ``finished`` marks arrived vehicles."""
    rows: list[dict[str, object]] = []
    persons: list[dict[str, object]] = []
    for elem in _iter_elements(path, ("tripinfo", "personinfo")):
        if elem.tag == "tripinfo":
            row: dict[str, object] = {"id": elem.get("id"), "vType": elem.get("vType", "")}
            for key, typ in _TRIP_FIELDS.items():
                row[key] = typ(float(elem.get(key, "nan"))) if typ is int else typ(elem.get(key, "nan"))
            rows.append(row)
        else:
            walk_loss = sum(float(w.get("timeLoss", 0.0)) for w in elem)
            duration = sum(float(w.get("duration", 0.0)) for w in elem)
            arrival = min((float(w.get("arrival", -1)) for w in elem), default=-1.0)
            persons.append(
                {"id": elem.get("id"), "timeLoss": walk_loss, "duration": duration, "finished": arrival >= 0}
            )
    veh = pd.DataFrame(rows, columns=["id", "vType", *_TRIP_FIELDS])
    veh["finished"] = veh["arrival"] >= 0
    return veh, pd.DataFrame(persons, columns=["id", "timeLoss", "duration", "finished"])


def read_schedule(route_files: Iterable[str | os.PathLike[str]]) -> pd.Series:
    """Return the scheduled departure (s) of every vehicle and trip in ``route_files``, by id."""
    departs: dict[str, float] = {}
    for path in route_files:
        for elem in _iter_elements(path, ("vehicle", "trip")):
            depart = elem.get("depart", "0")
            try:
                departs[elem.get("id", "")] = float(depart)
            except ValueError:  # "triggered" and similar: no scheduled time
                continue
    return pd.Series(departs, dtype=float, name="depart")


def read_statistics(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read the few fields we use from SUMO's ``--statistic-output``."""
    out: dict[str, float] = {}
    if not Path(path).exists():
        return out
    root = etree.parse(str(path)).getroot()
    tele = root.find("teleports")
    if tele is not None:
        out["teleports"] = float(tele.get("total", 0))
    perf = root.find("performance")
    if perf is not None:
        out["real_time_factor"] = float(perf.get("realTimeFactor", "nan"))
        out["duration_s"] = float(perf.get("duration", "nan")) if perf.get("duration") else float("nan")
    return out


def read_summary(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read SUMO's ``--summary-output`` (one row per step: running, waiting, halting, meanSpeed ...)."""
    cols = [
        "time",
        "loaded",
        "inserted",
        "running",
        "waiting",
        "arrived",
        "halting",
        "meanSpeed",
        "meanWaitingTime",
        "meanTravelTime",
        "teleports",
    ]
    rows = [{c: float(e.get(c, "nan")) for c in cols} for e in _iter_elements(path, ("step",))]
    return pd.DataFrame(rows, columns=cols)


def _mean(series: pd.Series) -> float:
    return float(series.mean()) if len(series) else float("nan")


def summarize(
    *,
    vehicles: pd.DataFrame,
    schedule: pd.Series,
    begin: float,
    end: float,
    persons: pd.DataFrame | None = None,
    teleports: int = 0,
) -> RunMetrics:
    """Compute :class:`RunMetrics` from tripinfo records and the scheduled departures.

    Parameters
    ----------
    vehicles
        Vehicle records from :func:`read_tripinfo` (finished and unfinished).
    schedule
        Scheduled departures by vehicle id from :func:`read_schedule`.
    begin, end
        The evaluation window in seconds; vehicles scheduled in ``[begin, end)`` count.
    """
    window = schedule[(schedule >= begin) & (schedule < end)]
    recorded = vehicles[vehicles["id"].isin(window.index) | ~vehicles["id"].isin(schedule.index)]
    base = float((recorded["timeLoss"] + recorded["departDelay"]).sum())

    missing = window[~window.index.isin(recorded["id"])]
    exact_n = len(recorded) + len(missing)
    exact = (base + float((end - missing).sum())) / exact_n if exact_n else float("nan")

    latest = float(recorded["depart"].max()) if len(recorded) else begin
    resco_missing = window[window > latest]
    resco_n = len(recorded) + len(resco_missing)
    resco = (base + float((end - resco_missing).sum())) / resco_n if resco_n else float("nan")

    finished = recorded[recorded["finished"]]
    hours = max(end - begin, 1e-9) / 3600.0
    persons = persons if persons is not None else pd.DataFrame(columns=["timeLoss", "finished"])
    return RunMetrics(
        vehicles_scheduled=len(window),
        vehicles_inserted=len(recorded),
        vehicles_finished=len(finished),
        vehicles_still_running=len(recorded) - len(finished),
        vehicles_never_inserted=len(missing),
        vehicles_blocked=int((recorded["departDelay"] > BLOCKED_AFTER_S).sum())
        + int((end - missing > BLOCKED_AFTER_S).sum()),
        resco_delay_s=resco,
        exact_delay_s=exact,
        mean_trip_time_s=_mean(recorded["duration"]),
        mean_time_loss_s=_mean(recorded["timeLoss"]),
        mean_wait_s=_mean(recorded["waitingTime"]),
        mean_stops=_mean(recorded["waitingCount"]),
        mean_route_length_m=_mean(finished["routeLength"]),
        throughput_veh_h=len(finished) / hours,
        teleports=int(teleports),
        persons=len(persons),
        persons_finished=int(persons["finished"].sum()) if len(persons) else 0,
        mean_person_time_loss_s=_mean(persons["timeLoss"]) if len(persons) else float("nan"),
    )
