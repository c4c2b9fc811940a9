"""Vehicle demand: a time-of-day profile turned into routed trips with SUMO's ``randomTrips.py``.

The scenario's window is cut into equal intervals (15 min by default). Each interval gets an
insertion rate, ``base x profile(t)`` at the interval's midpoint, where the profile interpolates
linearly between the given ``(time, factor)`` points and holds its end values outside them.
``randomTrips.py`` draws origins and destinations (fringe edges weighted by ``fringe_factor``),
departure times uniformly at random inside each interval (``--random-depart``) and a vType from the
fleet distribution per trip; ``duarouter`` (called by ``randomTrips.py`` with ``--validate``)
computes each vehicle's fastest route in the empty network and drops trips that cannot be routed,
which ``randomTrips.py`` replaces by new draws. Everything is seeded: the same seed gives
byte-identical route files.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

from roadtwin._io import write_text
from roadtwin.toolchain import run_tool, tool

__all__ = [
    "copy_routes",
    "interval_rates",
    "profile_factor",
    "random_trips",
    "write_routes",
    "write_vehicle_routes",
]


def profile_factor(t: float, profile: Sequence[tuple[float, float]]) -> float:
    """Return the demand factor at time ``t`` (s) of a piecewise-linear profile of ``(time, factor)``.

    An empty profile is flat (factor 1); outside its points the profile holds its first or last factor.
    """
    if not profile:
        return 1.0
    if t <= profile[0][0]:
        return profile[0][1]
    for (t0, f0), (t1, f1) in itertools.pairwise(profile):
        if t <= t1:
            return f0 + (f1 - f0) * (t - t0) / (t1 - t0) if t1 > t0 else f1
    return profile[-1][1]


def interval_rates(
    *,
    begin: float,
    end: float,
    interval: float = 900.0,
    veh_per_hour: float | None = None,
    total_vehicles: float | None = None,
    profile: Sequence[tuple[float, float]] = (),
) -> list[float]:
    """Return the insertion rate (veh/h) of each of the equal intervals that cover ``[begin, end)``.

    Parameters
    ----------
    begin, end
        The window in s.
    interval
        The wanted interval length in s; the window is cut into ``round((end - begin) / interval)``
        equal parts (at least one).
    veh_per_hour
        The rate where the profile's factor is 1 (give this or ``total_vehicles``).
    total_vehicles
        The number of vehicles over the whole window; the profile is scaled to it.
    profile
        ``(time_s, factor)`` points in increasing time (empty: flat).
    """
    n = max(1, round((end - begin) / interval))
    width = (end - begin) / n
    factors = [profile_factor(begin + (i + 0.5) * width, profile) for i in range(n)]
    if total_vehicles is not None:
        hours = sum(factors) * width / 3600.0
        base = total_vehicles / hours if hours > 0 else 0.0
    else:
        base = veh_per_hour or 0.0
    return [base * f for f in factors]


def random_trips(
    *,
    net_file: Path,
    routes: Path,
    work: Path,
    begin: float,
    end: float,
    rates: Sequence[float],
    seed: int,
    prefix: str,
    options: Sequence[str] = (),
) -> None:
    """Run ``randomTrips.py`` with ``duarouter`` validation; write routed trips to ``routes``.

    ``work`` holds the intermediate files; ``options`` are extra ``randomTrips.py`` arguments.
    """
    run_tool(
        [
            tool("randomTrips.py"),
            "-n", net_file,
            "-o", work / f"{prefix}.trips.xml",
            "-r", routes,
            "-b", f"{begin:g}",
            "-e", f"{end:g}",
            "--insertion-rate", *[f"{r:.6g}" for r in rates],
            "--random-depart",
            "--seed", str(seed),
            "--duarouter-seed", str(seed),
            "--prefix", prefix,
            "--threads", "1",
            "--validate",
            *options,
        ],
        what=f"randomTrips.py ({prefix})",
        cwd=work,
    )  # fmt: skip


def copy_routes(src: Path, dst: Path, *, tag: str, header: str) -> int:
    """Copy a SUMO route file without its timestamped comments; return the number of ``tag`` elements."""
    root = ET.parse(src).getroot()  # comments (with dates and machine paths) are dropped here
    count = sum(1 for el in root if el.tag == tag)
    ET.indent(root, space="    ")
    write_text(
        dst,
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + f"<!-- {header} -->\n"
        + ET.tostring(root, encoding="unicode")
        + "\n",
    )
    return count


def write_vehicle_routes(
    path: str | os.PathLike[str],
    *,
    net_file: str | os.PathLike[str],
    vtypes_file: str | os.PathLike[str],
    begin: float,
    end: float,
    rates: Sequence[float],
    seed: int,
    fringe_factor: float = 5.0,
    min_distance: float = 500.0,
    type_id: str = "mix",
    label: str = "",
) -> int:
    """Write routed vehicles for ``rates`` (veh/h per equal interval of ``[begin, end)``); return their number.

    Parameters
    ----------
    path
        Output ``.rou.xml`` (written atomically; no vTypes inside: load ``vtypes_file`` as an additional).
    net_file
        The network.
    vtypes_file
        The additional file that defines ``type_id`` (a vType or vTypeDistribution).
    begin, end, rates
        The window in s and the insertion rate of each interval.
    seed
        Random seed of ``randomTrips.py`` and ``duarouter``.
    fringe_factor
        Weight of fringe edges as origins and destinations (through and entering traffic).
    min_distance
        Minimum straight-line distance in m between origin and destination.
    type_id
        The vType or distribution every trip draws from.
    label
        Text for the file's header comment.
    """
    vtypes = str(Path(vtypes_file).resolve())
    return write_routes(
        path,
        net_file=net_file,
        what="vehicles",
        tag="vehicle",
        prefix="veh",
        begin=begin,
        end=end,
        rates=rates,
        seed=seed,
        label=label,
        options=[
            "-a", vtypes,
            # duarouter copies the vTypes into its output unless told to write them elsewhere.
            "--vtype-output", "vtypes.dup.xml",
            "--fringe-factor", f"{fringe_factor:g}",
            "--min-distance", f"{min_distance:g}",
            "--trip-attributes", f'type="{type_id}" departLane="best" departSpeed="max"',
        ],
    )  # fmt: skip


def write_routes(
    path: str | os.PathLike[str],
    *,
    net_file: str | os.PathLike[str],
    what: str,
    tag: str,
    prefix: str,
    begin: float,
    end: float,
    rates: Sequence[float],
    seed: int,
    label: str = "",
    options: Sequence[str] = (),
) -> int:
    """Write routed ``randomTrips.py`` output (``tag`` elements) to ``path`` atomically; return their number.

    ``what`` names them in the file's header comment; no rate above 0 writes an empty ``<routes/>``.
    Relative paths in ``options`` resolve in a temporary work folder beside ``path``.
    """
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"RoadTwin {what}{': ' + label if label else ''}; seed {seed}; randomTrips.py + duarouter"
    if sum(rates) <= 0:
        write_text(out, f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- {header} -->\n<routes/>\n')
        return 0
    with tempfile.TemporaryDirectory(prefix=f".{what}-", dir=out.parent) as tmp:
        work = Path(tmp)
        routes = work / f"{what}.rou.xml"
        random_trips(
            net_file=Path(net_file).resolve(),
            routes=routes,
            work=work,
            begin=begin,
            end=end,
            rates=rates,
            seed=seed,
            prefix=prefix,
            options=options,
        )
        return copy_routes(routes, out, tag=tag, header=header)
