"""Building SUMO networks with ``netconvert``: from a zone, an OSM extract, or an existing network.

A zone becomes plain XML nodes (lon/lat) and edges, converted in UTM with signals at the signalized
junctions (node id = junction id, edge id ``{from}_{to}``, traffic-light id = node id, edge ``name`` =
street). Each build keeps its recipe beside the network: ``<name>.netccfg`` (re-runnable with
``netconvert -c``), its plain inputs and ``<name>.log``; zone builds also keep a stamp of the zone's
files so that :func:`network_for` rebuilds only when they change.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

from roadtwin._io import atomic_path, write_json
from roadtwin.errors import NetworkError, SimulationError
from roadtwin.maps._netconvert import run_netconvert
from roadtwin.maps._paths import base_name
from roadtwin.maps._xml import check_root
from roadtwin.maps.network import load_net
from roadtwin.maps.zone import Zone, list_zones, load_zone
from roadtwin.workspace import Workspace

__all__ = ["build_network", "network_for"]

_OSM_NOTICE = """# Attribution

This network is built from OpenStreetMap data ({source}): © OpenStreetMap contributors, available under
the Open Database License (ODbL 1.0), https://www.openstreetmap.org/copyright .
"""
_RECIPE = "1"  # bump when the zone's netconvert recipe changes in a way the options do not show


def build_network(
    *,
    out: Path,
    zone: str | None = None,
    osm: Path | None = None,
    net: Path | None = None,
    sidewalks: bool = True,
) -> Path:
    """Build or import a SUMO network from exactly one source and write it atomically.

    Parameters
    ----------
    out
        The ``.net.xml`` file to write, or a folder (the file is then ``<name>.net.xml`` inside it).
    zone
        A zone name or folder (see :func:`roadtwin.maps.load_zone`): converted with netconvert.
    osm
        An OpenStreetMap XML extract: imported with netconvert's OSM options (signals guessed and joined,
        junction clusters joined, ramps and roundabouts guessed, edges kept for passenger cars).
    net
        An existing SUMO network: validated and copied.
    sidewalks
        Add sidewalks and pedestrian crossings (zone and OSM builds).

    Returns
    -------
    Path
        The written ``.net.xml``.

    Raises
    ------
    NetworkError
        Not exactly one source, or a missing or malformed zone, OSM file or network, or one that
        netconvert rejects (the message keeps netconvert's error line).
    """
    given = [name for name, value in (("zone", zone), ("osm", osm), ("net", net)) if value is not None]
    if len(given) != 1:
        raise NetworkError(
            path=None, field="source", expected="exactly one of zone, osm, net", got=", ".join(given) or None
        )
    if zone is not None:
        z = load_zone(zone)
        target = _target(out, z.name)
        _build_zone(z, target=target, sidewalks=sidewalks)
    elif osm is not None:
        target = _target(out, base_name(Path(osm)))
        _build_osm(Path(osm), target=target, sidewalks=sidewalks)
    else:
        assert net is not None
        target = _target(out, base_name(Path(net)))
        _import_net(Path(net), target=target)
    return target


def network_for(*, workspace: Workspace, name: str = "yizhuang", rebuild: bool = False) -> Path:
    """Return the workspace's network ``networks/<name>/<name>.net.xml``, building a zone's when needed.

    A built-in zone's network is built once and rebuilt when the zone's files (or the build recipe)
    change, keeping the sidewalk choice of the last build; any other name must have been built or
    imported before (``roadtwin maps build --osm/--net``).

    Parameters
    ----------
    workspace
        The workspace.
    name
        A built-in zone, or the name of a network already in the workspace.
    rebuild
        Rebuild a zone's network even when it is up to date.

    Returns
    -------
    Path
        The ``.net.xml`` file.
    """
    folder = workspace.networks / name
    target = folder / f"{name}.net.xml"
    if name in list_zones():
        z = load_zone(name)
        stored = _read_stamp(folder / f"{name}.stamp.json")
        sidewalks = bool(stored.get("sidewalks", True))
        if rebuild or not target.is_file() or stored.get("stamp") != _zone_stamp(z, sidewalks=sidewalks):
            build_network(out=target, zone=name, sidewalks=sidewalks)
        return target
    if target.is_file():
        return target
    zones = ", ".join(list_zones())
    raise NetworkError(
        path=target,
        field=None,
        expected=f"a network built or imported with `roadtwin maps build` (built-in zones: {zones})",
    )


def _target(out: Path, name: str) -> Path:
    out = Path(out)
    if out.suffix == ".xml":
        return out
    if out.suffix == ".gz":
        raise NetworkError(path=out, field="out", expected="a .net.xml file or a folder (not compressed)")
    return out / f"{name}.net.xml"


def _stem(target: Path) -> str:
    return base_name(target)


def _zone_options(zone: Zone, *, sidewalks: bool) -> list[str]:
    """netconvert's options for a zone (inputs and outputs excluded)."""
    options = [
        "--proj", zone.proj,
        "--junctions.join", "false",  # joining moves junctions; their lon/lat must round-trip
        "--tls.guess-signals", "false",
        "--tls.default-type", "static",
        "--tls.cycle.time", "90",
        "--no-turnarounds.tls", "true",  # fringe nodes let traffic turn back; signals do not
        "--output.street-names", "true",
    ]  # fmt: skip
    if sidewalks:
        max_speed = zone.speed_policy.max_kmh / 3.6 + 0.5
        options += [
            "--sidewalks.guess", "true",
            "--sidewalks.guess.max-speed", f"{max_speed:.2f}",
            "--crossings.guess", "true",
        ]  # fmt: skip
    return options


def _osm_options(*, sidewalks: bool) -> list[str]:
    options = [
        "--proj.utm", "true",
        "--geometry.remove", "true",
        "--ramps.guess", "true",
        "--roundabouts.guess", "true",
        "--junctions.join", "true",
        "--tls.guess-signals", "true",
        "--tls.discard-simple", "true",
        "--tls.join", "true",
        "--tls.default-type", "static",
        "--keep-edges.by-vclass", "passenger",
        "--remove-edges.isolated", "true",
        "--no-turnarounds.tls", "true",
        "--output.street-names", "true",
        "--output.original-names", "true",
    ]  # fmt: skip
    if sidewalks:
        options += [
            "--osm.sidewalks", "true",
            "--sidewalks.guess", "true",
            "--sidewalks.guess.max-speed", "20",
            "--crossings.guess", "true",
        ]  # fmt: skip
    return options


def _sumo_version() -> str:
    try:
        return importlib.metadata.version("eclipse-sumo")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source install of SUMO
        return "unknown"


def _zone_stamp(zone: Zone, *, sidewalks: bool) -> str:
    recipe = "\n".join([_RECIPE, _sumo_version(), zone.digest, *_zone_options(zone, sidewalks=sidewalks)])
    return hashlib.sha256(recipe.encode()).hexdigest()


def _read_stamp(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _plain_xml(zone: Zone) -> tuple[str, str]:
    """Return the zone as netconvert's plain nodes and edges XML (x = lon, y = lat)."""
    nodes = ["<nodes>"]
    for j in zone.junctions:
        kind = "traffic_light" if j.signalized else "priority"
        nodes.append(f'    <node id={quoteattr(j.id)} x="{j.lon:.7f}" y="{j.lat:.7f}" type="{kind}"/>')
    nodes.append("</nodes>\n")
    edges = ["<edges>"]
    for link in zone.links:
        edges.append(
            f"    <edge id={quoteattr(link.id)} from={quoteattr(link.from_id)} to={quoteattr(link.to_id)}"
            f' name={quoteattr(link.street)} numLanes="{link.lanes}"'
            f' speed="{link.speed_kmh / 3.6:.2f}" priority="{link.lanes}"/>'
        )
    edges.append("</edges>\n")
    return "\n".join(nodes), "\n".join(edges)


def _netconvert(options: list[str], *, workdir: Path, stem: str, user_file: Path | None) -> None:
    """Save ``options`` as ``<stem>.netccfg``, run netconvert on it, keep its messages in ``<stem>.log``."""
    cfg = f"{stem}.netccfg"
    args = [*options, "--output-file", f"{stem}.net.xml"]
    expected = "an OpenStreetMap extract with roads that netconvert can import"
    run_netconvert([*args, "--save-configuration", cfg], cwd=workdir, user_file=user_file, expected=expected)
    done = run_netconvert(["--configuration-file", cfg], cwd=workdir, user_file=user_file, expected=expected)
    (workdir / f"{stem}.log").write_text((done.stdout or "") + (done.stderr or ""), encoding="utf-8")


def _install(workdir: Path, target: Path, sidecars: list[str]) -> None:
    """Move the build's side files, then (last, atomically) the network, next to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stem = _stem(target)
    for name in sidecars:
        src = workdir / name
        if src.exists():
            os.replace(src, target.parent / name)
    os.replace(workdir / f"{stem}.net.xml", target)


def _build_zone(zone: Zone, *, target: Path, sidewalks: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    stem = _stem(target)
    nodes_xml, edges_xml = _plain_xml(zone)
    with tempfile.TemporaryDirectory(prefix=f".{stem}.build-", dir=target.parent) as tmp:
        work = Path(tmp)
        (work / f"{stem}.nod.xml").write_text(nodes_xml, encoding="utf-8")
        (work / f"{stem}.edg.xml").write_text(edges_xml, encoding="utf-8")
        options = [
            "--node-files", f"{stem}.nod.xml",
            "--edge-files", f"{stem}.edg.xml",
            *_zone_options(zone, sidewalks=sidewalks),
        ]  # fmt: skip
        _netconvert(options, workdir=work, stem=stem, user_file=None)
        built = load_net(work / f"{stem}.net.xml")
        if len(built.getTrafficLights()) != len(zone.signalized):  # pragma: no cover - a recipe bug
            raise SimulationError(
                f"netconvert built {len(built.getTrafficLights())} traffic lights for zone {zone.name!r}, "
                f"expected {len(zone.signalized)}"
            )
        if zone.attribution:
            (work / "ATTRIBUTION.md").write_text(zone.attribution, encoding="utf-8")
        _install(work, target, [f"{stem}.nod.xml", f"{stem}.edg.xml", f"{stem}.netccfg", f"{stem}.log",
                                "ATTRIBUTION.md"])  # fmt: skip
    write_json(
        target.with_name(f"{stem}.stamp.json"),
        {"zone": zone.name, "sidewalks": sidewalks, "stamp": _zone_stamp(zone, sidewalks=sidewalks)},
    )


def _build_osm(osm: Path, *, target: Path, sidewalks: bool) -> None:
    if not osm.is_file():
        raise NetworkError(path=osm, field=None, expected="an existing OpenStreetMap XML file (.osm)")
    check_root(osm, tag="osm", expected="an OpenStreetMap XML file (<osm> root element)", whole=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    stem = _stem(target)
    with tempfile.TemporaryDirectory(prefix=f".{stem}.build-", dir=target.parent) as tmp:
        work = Path(tmp)
        options = ["--osm-files", str(osm.resolve()), *_osm_options(sidewalks=sidewalks)]
        _netconvert(options, workdir=work, stem=stem, user_file=osm)
        try:
            load_net(work / f"{stem}.net.xml")
        except NetworkError:
            raise NetworkError(
                path=osm, field="way", expected="at least one highway that passenger cars may use"
            ) from None
        if not (target.parent / "ATTRIBUTION.md").exists():
            (work / "ATTRIBUTION.md").write_text(_OSM_NOTICE.format(source=osm.name), encoding="utf-8")
        _install(work, target, [f"{stem}.netccfg", f"{stem}.log", "ATTRIBUTION.md"])


def _import_net(net: Path, *, target: Path) -> None:
    load_net(net)
    if target.exists() and target.resolve() == net.resolve():
        return
    with atomic_path(target) as tmp:
        if net.suffix == ".gz" and target.suffix != ".gz":
            with gzip.open(net, "rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(net, tmp)
