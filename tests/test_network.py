"""Reading networks: validated, cached loading and GeoDataFrames in lon/lat."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from roadtwin.errors import NetworkError
from roadtwin.maps import load_net, load_zone, network_frames, summarize_network


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (None, None),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "line 1"),
        (b'<?xml version="1.0"?>\n<net version="1.20">\n  <edge id="a" from="x"', "line 3"),
        (b'<routes><vehicle id="v" depart="0"/></routes>', "root element"),
        (b'<net version="1.20"><location netOffset="0,0" convBoundary="0,0,1,1" origBoundary="0,0,1,1" '
         b'projParameter="!"/></net>', "edge"),
    ],
    ids=["missing", "binary", "truncated", "routes-file", "no-edges"],
)  # fmt: skip
def test_bad_network_files_name_file_and_field(
    tmp_path: Path, content: bytes | None, field: str | None
) -> None:
    path = tmp_path / "bad.net.xml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(NetworkError) as info:
        load_net(path)
    message = str(info.value)
    assert "bad.net.xml" in message and "\n" not in message
    if field:
        assert f": {field}:" in message


def test_load_net_is_cached_until_the_file_changes(zone_net: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.net.xml"
    shutil.copyfile(zone_net, copy)
    first = load_net(copy)
    assert load_net(copy) is first
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_net(copy) is not first


def test_summary_counts(zone_net: Path) -> None:
    zone = load_zone()
    s = summarize_network(zone_net)
    assert (s.junctions, s.signals, s.edges) == (len(zone.junctions), len(zone.signalized), len(zone.links))
    assert s.lanes == sum(link.lanes for link in zone.links) and s.sidewalks == len(zone.links)
    assert 80 < s.km < 200


def test_frames_are_lon_lat_layers(zone_net: Path) -> None:
    zone = load_zone()
    frames = network_frames(zone_net)
    for layer in (frames.edges, frames.lanes, frames.junctions, frames.signals):
        assert layer.crs.to_epsg() == 4326
        assert layer.geometry.is_valid.all()
    assert len(frames.junctions) == len(zone.junctions) and len(frames.signals) == len(zone.signalized)
    assert len(frames.edges) == len(zone.links)
    assert len(frames.lanes) == sum(link.lanes + 1 for link in zone.links)

    where = frames.junctions.set_index("id")
    for j in zone.junctions:
        assert where.loc[j.id, "lon"] == pytest.approx(j.lon, abs=1e-5)
        assert where.loc[j.id, "lat"] == pytest.approx(j.lat, abs=1e-5)
    assert set(frames.junctions["type"]) == {"traffic_light", "priority"}

    edge = frames.edges.set_index("id").loc["86_87"]
    assert (
        edge["name"] == "荣华中路"
        and edge["lanes"] == 5
        and edge["speed"] == pytest.approx(70 / 3.6, abs=0.01)
    )
    assert edge.geometry.geom_type == "LineString"
    lanes = frames.lanes.set_index("id")
    assert lanes.loc["86_87_0", "allow"] == "pedestrian"
    assert lanes.loc["86_87_1", "disallow"] == "pedestrian" and lanes.loc["86_87_1", "name"] == "荣华中路"

    signal = frames.signals.set_index("id").loc["90"]
    assert signal["junction"] == "90" and signal["cycle"] == 90 and signal["phases"] >= 4
    plan = json.loads(signal["plan"])
    assert len(plan) == signal["phases"] and all(len(state) == len(plan[0][0]) for state, _ in plan)
    assert (signal["lon"], signal["lat"]) == pytest.approx((116.50392, 39.79168), abs=1e-5)


def test_frames_of_the_full_177_signal_network(shared_yizhuang_net: Path) -> None:
    frames = network_frames(shared_yizhuang_net)
    assert len(frames.signals) == 177
    lon0, lat0, lon1, lat1 = frames.junctions.total_bounds
    assert 116.43 < lon0 < lon1 < 116.56 and 39.74 < lat0 < lat1 < 39.84


def test_frames_need_a_projection(plain_net: Path) -> None:
    assert summarize_network(plain_net).junctions == 9  # a valid network...
    with pytest.raises(
        NetworkError, match=r"grid\.net\.xml: location\.projParameter: expected a geo-referenced"
    ):
        network_frames(plain_net)  # ...but without lon/lat
