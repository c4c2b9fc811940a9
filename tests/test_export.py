"""Exports: GeoParquet read back by geopandas, OpenDRIVE re-imported by netconvert."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from lxml import etree

from roadtwin.cli import main
from roadtwin.errors import NetworkError
from roadtwin.maps import export_network, load_net, load_zone
from roadtwin.toolchain import binary, run_tool


def test_geoparquet_round_trips(zone_net: Path, tmp_path: Path) -> None:
    zone = load_zone()
    written = export_network(zone_net, fmt="geoparquet", out=tmp_path / "gpq")
    names = {p.name for p in written}
    assert {
        "edges.parquet",
        "lanes.parquet",
        "junctions.parquet",
        "signals.parquet",
        "ATTRIBUTION.md",
    } == names
    layers = {
        name: gpd.read_parquet(tmp_path / "gpq" / f"{name}.parquet")
        for name in ("edges", "lanes", "junctions", "signals")
    }
    for frame in layers.values():
        assert frame.crs.to_epsg() == 4326
    assert len(layers["junctions"]) == len(zone.junctions)
    assert len(layers["signals"]) == len(zone.signalized)
    assert len(layers["edges"]) == len(zone.links)
    assert len(layers["lanes"]) == sum(link.lanes + 1 for link in zone.links)
    assert set(layers["lanes"].geom_type) == {"LineString"} and set(layers["signals"].geom_type) == {"Point"}
    assert "荣华中路" in set(layers["edges"]["name"])
    lon0, lat0, lon1, lat1 = layers["junctions"].total_bounds
    assert zone.bbox[0] <= lon0 < lon1 <= zone.bbox[2] and zone.bbox[1] <= lat0 < lat1 <= zone.bbox[3]


def test_opendrive_is_reimported_by_netconvert(zone_net: Path, tmp_path: Path) -> None:
    (xodr, notice) = export_network(zone_net, fmt="opendrive", out=tmp_path / "xodr")
    assert xodr.name == "yizhuang.xodr" and notice.name == "ATTRIBUTION.md"
    root = etree.parse(str(xodr)).getroot()
    assert root.tag == "OpenDRIVE" and len(root.findall("road")) > 0
    back = tmp_path / "back.net.xml"
    run_tool([binary("netconvert"), "--opendrive-files", xodr, "-o", back], what="netconvert")
    net, zone = load_net(back), load_zone()
    assert len(net.getEdges(withInternal=False)) == len(zone.links)
    assert len(net.getTrafficLights()) == len(zone.signalized)


def test_cli_export_defaults_to_the_workspace_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["maps", "export", "--workspace", str(tmp_path), "--format", "opendrive"]) == 0
    assert (tmp_path / "exports" / "yizhuang" / "yizhuang.xodr").is_file()
    assert (tmp_path / "networks" / "yizhuang" / "yizhuang.net.xml").is_file()
    assert "yizhuang.xodr" in capsys.readouterr().out


def test_cli_export_reads_its_config(zone_net: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "export.yaml"
    cfg.write_text(f"net: {zone_net}\nformat: geoparquet\nout: {tmp_path / 'layers'}\n", encoding="utf-8")
    assert main(["maps", "export", "--config", str(cfg)]) == 0
    assert (tmp_path / "layers" / "signals.parquet").is_file()


def test_geoparquet_needs_a_projection(plain_net: Path, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="projParameter"):
        export_network(plain_net, fmt="geoparquet", out=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--net", "{tmp}/nope.net.xml"], "nope.net.xml"),
        (["--net", "{tmp}/bad.net.xml"], "bad.net.xml: line 2"),
        (["--format", "shapefile"], "format"),
    ],
    ids=["missing-net", "malformed-net", "bad-format"],
)
def test_cli_export_bad_input(
    args: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.net.xml").write_text("<net version='1.20'>\n<edge id=", encoding="utf-8")
    argv = [a.format(tmp=tmp_path) for a in args]
    assert main(["maps", "export", "--workspace", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err and "Traceback" not in err
