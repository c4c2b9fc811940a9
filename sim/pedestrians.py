"""Pedestrians: people walking between random points of the zone, crossing at signalised junctions.

``randomTrips.py --persons`` draws walks between sidewalk edges; ``duarouter`` routes them over
sidewalks, walking areas and the crossings that ``netconvert`` builds at signalised junctions, so
every road is crossed at a (signalised) crossing. The walks need a network with sidewalks and
crossings (:func:`pedestrian_network_problem` says what is missing).

SUMO's ``striping`` pedestrian model (its default) is used: walkers share sidewalks in stripes, queue
at red crossings and block turning vehicles while they cross. The alternative ``nonInteracting``
model is faster but lets vehicles drive through pedestrians on crossings, which defeats the point
of simulating them at signals.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

from roadtwin.sim.demand import write_routes

__all__ = ["PEDESTRIAN_MODEL", "pedestrian_network_problem", "pedestrian_options", "write_person_routes"]

PEDESTRIAN_MODEL = "striping"

_SIDEWALK = re.compile(rb'<lane [^>]*allow="pedestrian"')
_CROSSING = re.compile(rb'function="crossing"')


def pedestrian_network_problem(net_file: str | os.PathLike[str]) -> str | None:
    """Return what the network lacks for pedestrians (``"sidewalks"``, ``"crossings"``) or ``None``."""
    p = Path(net_file)
    data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    missing = [
        name
        for name, pattern in (("sidewalks", _SIDEWALK), ("crossings", _CROSSING))
        if not pattern.search(data)
    ]
    return " and ".join(missing) or None


def pedestrian_options() -> tuple[str, ...]:
    """Return the SUMO options for simulating the walkers."""
    return ("--pedestrian.model", PEDESTRIAN_MODEL)


def write_person_routes(
    path: str | os.PathLike[str],
    *,
    net_file: str | os.PathLike[str],
    begin: float,
    end: float,
    per_hour: float,
    seed: int,
    min_distance: float = 100.0,
    max_distance: float = 1500.0,
    label: str = "",
) -> int:
    """Write routed walks (``per_hour`` persons per hour over ``[begin, end)``); return their number.

    Parameters
    ----------
    path
        Output ``.rou.xml`` (written atomically).
    net_file
        A network with sidewalks and crossings.
    begin, end
        The window in s.
    per_hour
        Persons starting a walk per hour, uniformly at random in the window.
    seed
        Random seed of ``randomTrips.py`` and ``duarouter``.
    min_distance, max_distance
        Straight-line distance limits in m between the start and the end of a walk.
    label
        Text for the file's header comment.
    """
    return write_routes(
        path,
        net_file=net_file,
        what="pedestrians",
        tag="person",
        prefix="ped",
        begin=begin,
        end=end,
        rates=[per_hour],
        seed=seed,
        label=label,
        options=[
            "--persons",
            "--min-distance", f"{min_distance:g}",
            "--max-distance", f"{max_distance:g}",
            "--random-departpos",
            "--random-arrivalpos",
        ],
    )  # fmt: skip
