"""Building networks: the zone through netconvert, OSM and SUMO imports, and one-line errors for bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from lxml import etree

from roadtwin.cli import main
from roadtwin.errors import NetworkError
from roadtwin.maps import build_network, load_net, load_zone, network_for, summarize_network
from roadtwin.toolchain import binary, run_tool, tool
from roadtwin.workspace import Workspace


def _metres(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Great-circle distance (haversine), enough to check a 1 m round trip."""
    p0, p1 = math.radians(lat0), math.radians(lat1)
    a = (
        math.sin((p1 - p0) / 2) ** 2
        + math.cos(p0) * math.cos(p1) * math.sin(math.radians(lon1 - lon0) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def test_zone_signals_are_its_signalized_junctions(zone_net: Path) -> None:
    zone, net = load_zone(), load_net(zone_net)
    assert {t.getID() for t in net.getTrafficLights()} == {j.id for j in zone.signalized}
    assert {n.getID() for n in net.getNodes()} == {j.id for j in zone.junctions}
    assert net.getGeoProj().crs.utm_zone == "50N"


def test_every_junction_round_trips_within_1m(zone_net: Path) -> None:
    net = load_net(zone_net)
    worst = 0.0
    for j in load_zone().junctions:
        lon, lat = net.convertXY2LonLat(*net.getNode(j.id).getCoord())
        worst = max(worst, _metres(j.lon, j.lat, lon, lat))
    assert worst < 1.0


def test_edges_keep_ids_names_lanes_and_posted_speeds(zone_net: Path) -> None:
    net = load_net(zone_net)
    links = load_zone().links
    assert {e.getID() for e in net.getEdges(withInternal=False)} == {link.id for link in links}
    for link in links:
        edge = net.getEdge(link.id)
        assert edge.getName() == link.street
        road = [lane for lane in edge.getLanes() if "passenger" in lane.getPermissions()]
        assert len(road) == link.lanes
        assert all(lane.getSpeed() == pytest.approx(link.speed_kmh / 3.6, abs=0.01) for lane in road)
        assert edge.getLane(0).getPermissions() == {"pedestrian"}  # the sidewalk is lane 0


def _crossings_and_tls_links(net_file: Path) -> tuple[dict[str, int], dict[str, set[int]]]:
    """Crossings per junction, and the tls link indices that serve pedestrians, from the net XML."""
    root = etree.parse(str(net_file)).getroot()
    crossings: dict[str, int] = defaultdict(int)
    for edge in root.iter("edge"):
        if edge.get("function") == "crossing":
            crossings[edge.get("id")[1:].rsplit("_", 1)[0]] += 1
    ped_links: dict[str, set[int]] = defaultdict(set)
    for conn in root.iter("connection"):
        if conn.get("tl") and ":" in conn.get("from", "") + conn.get("to", ""):
            ped_links[conn.get("tl")].add(int(conn.get("linkIndex")))
    return crossings, ped_links


def test_signalized_junctions_have_sidewalks_and_crossings(zone_net: Path) -> None:
    crossings, ped_links = _crossings_and_tls_links(zone_net)
    net = load_net(zone_net)
    for j in load_zone().signalized:
        assert crossings[j.id] >= 1, j.id
        assert ped_links[j.id], j.id
        node = net.getNode(j.id)
        assert all(e.getLane(0).getPermissions() == {"pedestrian"} for e in node.getIncoming())


def test_every_signal_program_serves_every_approach(zone_net: Path) -> None:
    net = load_net(zone_net)
    _, ped_links = _crossings_and_tls_links(zone_net)
    for tls in net.getTrafficLights():
        (program,) = tls.getPrograms().values()
        states = [phase.state for phase in program.getPhases()]
        assert sum(phase.duration for phase in program.getPhases()) == 90
        by_edge: dict[str, set[int]] = defaultdict(set)
        for in_lane, _out_lane, index in tls.getConnections():
            by_edge[in_lane.getEdge().getID()].add(index)
        approaches = {e.getID() for e in net.getNode(tls.getID()).getIncoming()}
        assert set(by_edge) == approaches
        for edge, indices in by_edge.items():
            assert any(s[i] in "Gg" for s in states for i in indices), (tls.getID(), edge)
        for index in ped_links[tls.getID()]:  # every crossing gets its green too
            assert any(s[index] == "G" for s in states), (tls.getID(), index)
        assert any("y" in s for s in states)  # greens end in yellow


def test_network_is_strongly_connected_for_cars(zone_net: Path) -> None:
    net = load_net(zone_net)
    edges = [e for e in net.getEdges(withInternal=False) if e.allows("passenger")]

    def reach(start: object, forward: bool) -> set[object]:
        seen, todo = {start}, [start]
        while todo:
            e = todo.pop()
            for nxt in e.getOutgoing() if forward else e.getIncoming():  # type: ignore[attr-defined]
                if nxt not in seen and nxt.allows("passenger"):
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert len(reach(edges[0], True)) == len(reach(edges[0], False)) == len(edges)


def test_random_trips_route_and_arrive(zone_net: Path, tmp_path: Path) -> None:
    routes, tripinfo = tmp_path / "r.rou.xml", tmp_path / "tripinfo.xml"
    run_tool(
        [tool("randomTrips.py"), "-n", zone_net, "-r", routes, "-o", tmp_path / "t.trips.xml",
         "-e", "300", "-p", "1.5", "--fringe-factor", "10", "--seed", "7"],
        what="randomTrips",
    )  # fmt: skip
    assert "no valid route" not in (tmp_path / "r.rou.xml").read_text()
    run_tool(
        [binary("sumo"), "-n", zone_net, "-r", routes, "--end", "1200", "--no-step-log",
         "--tripinfo-output", tripinfo, "--time-to-teleport", "300"],
        what="sumo",
    )  # fmt: skip
    departed = len(etree.parse(str(routes)).getroot().findall("vehicle"))
    arrived = len(etree.parse(str(tripinfo)).getroot().findall("tripinfo"))
    assert departed >= 150 and arrived >= 0.95 * departed


def test_no_sidewalks_option(tmp_path: Path) -> None:
    net_file = build_network(out=tmp_path, zone="yizhuang", sidewalks=False)
    assert net_file == tmp_path / "yizhuang.net.xml"
    summary = summarize_network(net_file)
    assert summary.sidewalks == 0 and summary.signals == len(load_zone().signalized)
    assert 'function="crossing"' not in net_file.read_text(encoding="utf-8")


def test_build_keeps_its_recipe_and_attribution(zone_net: Path) -> None:
    folder = zone_net.parent
    for name in (
        "yizhuang.netccfg",
        "yizhuang.nod.xml",
        "yizhuang.edg.xml",
        "yizhuang.log",
        "ATTRIBUTION.md",
    ):
        assert (folder / name).is_file(), name
    assert not [p for p in folder.iterdir() if ".build-" in p.name or ".tmp-" in p.name]
    assert "ODbL" in (folder / "ATTRIBUTION.md").read_text(encoding="utf-8")


def test_network_for_builds_once_and_rebuilds_when_stale(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    first = network_for(workspace=ws)
    assert first == ws.networks / "yizhuang" / "yizhuang.net.xml"
    built = first.stat().st_mtime_ns
    assert network_for(workspace=ws).stat().st_mtime_ns == built  # reused
    stamp = first.with_name("yizhuang.stamp.json")
    stamp.write_text(stamp.read_text().replace('"stamp": "', '"stamp": "stale'))
    os.utime(first, ns=(built - 10**9, built - 10**9))
    assert network_for(workspace=ws).stat().st_mtime_ns > built - 10**9  # zone changed: rebuilt


def test_network_for_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="roadtwin maps build"):
        network_for(workspace=Workspace.at(tmp_path), name="nowhere")


def test_import_full_177_signal_network(shared_yizhuang_net: Path, tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    out = build_network(out=ws.networks / "new_yizhuang", net=shared_yizhuang_net)
    assert out == ws.networks / "new_yizhuang" / "new_yizhuang.net.xml"
    assert len(load_net(out).getTrafficLights()) == 177
    assert network_for(workspace=ws, name="new_yizhuang") == out


def test_import_tiny_osm(tiny_osm: Path, tmp_path: Path) -> None:
    out = build_network(out=tmp_path / "net", osm=tiny_osm)
    net = load_net(out)
    assert len(net.getTrafficLights()) == 1
    names = {e.getName() for e in net.getEdges(withInternal=False)}
    assert {"测试东街", "测试北路"} <= names  # the footway is dropped, names are kept
    (tls,) = net.getTrafficLights()
    node = tls.getConnections()[0][0].getEdge().getToNode()
    lon, lat = net.convertXY2LonLat(*node.getCoord())
    assert _metres(lon, lat, 116.51, 39.795) < 1.0
    assert summarize_network(out).sidewalks > 0
    assert "OpenStreetMap contributors" in (out.parent / "ATTRIBUTION.md").read_text(encoding="utf-8")


def test_exactly_one_source(tiny_osm: Path, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="exactly one"):
        build_network(out=tmp_path, zone="yizhuang", osm=tiny_osm)
    with pytest.raises(NetworkError, match="exactly one"):
        build_network(out=tmp_path)


def test_cli_build_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["maps", "build", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "yizhuang.net.xml" in out and str(len(load_zone().signalized)) in out
    assert (tmp_path / "networks" / "yizhuang" / "yizhuang.net.xml").is_file()


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """Case -> (CLI args, the file named in the error, the field or phrase named)."""
    (tmp / "broken.net.xml").write_text('<net version="1.20"><edge id="a"', encoding="utf-8")
    (tmp / "nodes.net.xml").write_text('<nodes><node id="a" x="0" y="0"/></nodes>', encoding="utf-8")
    (tmp / "broken.osm").write_text(
        '<osm version="0.6"><node id="1" lat="1" lon="2">\n</osm>', encoding="utf-8"
    )
    (tmp / "empty.osm").write_text('<osm version="0.6"><node id="1" lat="39.8" lon="116.5"/></osm>')
    (tmp / "opts.yaml").write_text("zone: yizhuang\nsidewalk: false\n", encoding="utf-8")
    (tmp / "typed.yaml").write_text("sidewalks: maybe\n", encoding="utf-8")
    return {
        "missing-net": (["--net", str(tmp / "nope.net.xml")], "nope.net.xml", "existing SUMO network"),
        "malformed-net": (["--net", str(tmp / "broken.net.xml")], "broken.net.xml", "line 1"),
        "not-a-sumo-net": (["--net", str(tmp / "nodes.net.xml")], "nodes.net.xml", "root element"),
        "missing-osm": (["--osm", str(tmp / "nope.osm")], "nope.osm", "existing OpenStreetMap"),
        "malformed-osm": (["--osm", str(tmp / "broken.osm")], "broken.osm", "line 2"),
        "osm-without-roads": (["--osm", str(tmp / "empty.osm")], "empty.osm", "No nodes loaded"),
        "unknown-config-field": (["--config", str(tmp / "opts.yaml")], "opts.yaml", "sidewalk"),
        "bad-config-value": (["--config", str(tmp / "typed.yaml")], "typed.yaml", "sidewalks"),
        "two-sources": (["--zone", "yizhuang", "--net", str(tmp / "x.net.xml")], "command line", "zone/net"),
    }


BAD = [
    "missing-net",
    "malformed-net",
    "not-a-sumo-net",
    "missing-osm",
    "malformed-osm",
    "osm-without-roads",
    "unknown-config-field",
    "bad-config-value",
    "two-sources",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, file, field = _bad_inputs(tmp_path)[case]
    code = main(["maps", "build", "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert file in lines[0] and field in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bad_input_through_the_console_script(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "roadtwin.cli", "maps", "build", "--net", str(tmp_path / "gone.net.xml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "gone.net.xml" in proc.stderr and "Traceback" not in proc.stderr
