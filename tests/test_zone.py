"""The built-in zone: real junctions, posted speeds, street names; bad zone files fail clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from roadtwin.errors import NetworkError
from roadtwin.maps import Zone, list_zones, load_zone

CORE_STREETS = ("荣华", "荣京东街", "荣昌东街", "科创", "宏达", "经海")


@pytest.fixture(scope="module")
def zone() -> Zone:
    return load_zone("yizhuang")


def test_builtin_zone_is_listed() -> None:
    assert "yizhuang" in list_zones()


def test_zone_has_the_signalized_core(zone: Zone) -> None:
    assert len(zone.signalized) >= 40
    streets = {s for j in zone.signalized for s in j.streets}
    for name in CORE_STREETS:
        assert any(name in s for s in streets), name
    lon0, lat0, lon1, lat1 = zone.bbox
    assert all(lon0 <= j.lon <= lon1 and lat0 <= j.lat <= lat1 for j in zone.junctions)
    # Real positions of the E-Town core, not a synthetic grid.
    assert all(116.48 < j.lon < 116.55 and 39.76 < j.lat < 39.83 for j in zone.junctions)


def test_speeds_are_posted_limits_and_streets_are_named(zone: Zone) -> None:
    assert {link.speed_kmh for link in zone.links} <= {50, 60, 70}
    assert all(50 <= link.speed_kmh <= 70 for link in zone.links)
    assert all(link.street for link in zone.links)
    rh = [link for link in zone.links if link.street == "荣华中路"]
    assert rh and all(link.lanes == 4 and link.speed_kmh == 70 for link in rh)


def test_arterials_run_both_ways(zone: Zone) -> None:
    pairs = {(link.from_id, link.to_id) for link in zone.links}
    two_way = sum((b, a) in pairs for a, b in pairs)
    assert two_way / len(pairs) > 0.95  # only the one-way 荣华路南环岛 ring and its ramps are not


def test_zone_projection_is_utm_50n(zone: Zone) -> None:
    assert zone.utm_zone == 50 and zone.hemisphere == "north"
    assert "+zone=50" in zone.proj and "+south" not in zone.proj


def test_attribution_names_odbl_and_osm(zone: Zone) -> None:
    text = zone.attribution
    assert "ODbL" in text and "OpenStreetMap contributors" in text and "REG-TSC" in text


def _copy_zone(tmp_path: Path) -> Path:
    folder = tmp_path / "myzone"
    shutil.copytree(load_zone("yizhuang").folder, folder)
    return folder


def test_zone_folder_loads_by_path(tmp_path: Path) -> None:
    folder = _copy_zone(tmp_path)
    assert len(load_zone(folder).signalized) == len(load_zone().signalized)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "field"),
    [
        ("links.csv", "86,87,荣华中路,4,70", "86,87,荣华中路,4,100", "speed_kmh"),
        ("links.csv", "86,87,荣华中路,4,70", "86,999,荣华中路,4,70", "to"),
        ("links.csv", "86,87,荣华中路,4,70", "86,87,荣华中路,four,70", "lanes"),
        ("junctions.csv", "86,116.49349", "86,16.49349", "lon/lat"),
        ("zone.yaml", "utm_zone: 50", "utm_zone: 99", "utm_zone"),
        ("zone.yaml", "utm_zone: 50", "utm_zone: 50\ncolour: red", "colour"),
    ],
    ids=["speed", "unknown-junction", "lanes", "outside-bbox", "utm", "unknown-field"],
)
def test_bad_zone_file_names_file_and_field(
    tmp_path: Path, file: str, old: str, new: str, field: str
) -> None:
    folder = _copy_zone(tmp_path)
    _replace(folder / file, old, new)
    with pytest.raises(NetworkError) as info:
        load_zone(folder)
    message = str(info.value)
    assert file in message and field in message and "\n" not in message


def test_missing_zone_file_and_unknown_zone(tmp_path: Path) -> None:
    folder = _copy_zone(tmp_path)
    (folder / "links.csv").unlink()
    with pytest.raises(NetworkError, match=r"links\.csv"):
        load_zone(folder)
    with pytest.raises(NetworkError, match="yizhuang"):
        load_zone("atlantis")
