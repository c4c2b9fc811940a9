"""OpenSCENARIO files of situations around automated vehicles (``roadtwin datasets openscenario``)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from roadtwin.cli import main
from roadtwin.datasets.openscenario import (
    KINDS,
    REAR_AXLE_SHARE,
    find_situations,
    reference_point,
    validate_xosc,
    write_openscenarios,
)
from roadtwin.errors import InputError


@pytest.fixture(scope="module")
def scenarios(exported_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Up to two situations of each kind from the shared dataset, written outside it (it is read-only)."""
    out = tmp_path_factory.mktemp("osc") / "openscenario"
    return out, write_openscenarios(exported_dataset, out=out, max_per_kind=2)


def _index(out: Path) -> dict:
    return json.loads((out / "index.json").read_text(encoding="utf-8"))


def test_every_kind_is_found_in_five_minutes_of_the_zone(scenarios: tuple[Path, list[Path]]) -> None:
    out, files = scenarios
    index = _index(out)
    kinds = [s["kind"] for s in index["situations"]]
    # 07:30-07:35 of the morning peak (seed 42, 32 AVs) holds all three kinds; red light is the sure one.
    assert kinds.count("red_light") == 2
    assert set(kinds) == set(KINDS)
    assert [out / s["file"] for s in index["situations"]] == files
    for s in index["situations"]:
        assert s["start_s"] <= s["time_s"] <= s["end_s"]
        assert (len(s["actors"]) == 1) == (s["kind"] != "red_light")
    red = next(s for s in index["situations"] if s["kind"] == "red_light")
    assert red["details"]["distance_m"] <= 80 and red["details"]["tls_id"]


def test_files_are_valid_openscenario_naming_the_exported_map(
    scenarios: tuple[Path, list[Path]], exported_dataset: Path, tmp_path: Path
) -> None:
    import xmlschema
    from scenariogeneration.xosc import xosc_reader

    xsd = Path(xosc_reader.__file__).parents[2] / "schemas" / "OpenSCENARIO_1_2.xsd"
    schema = xmlschema.XMLSchema(xsd)
    out, files = scenarios
    for path in files:
        validate_xosc(path)
        assert schema.is_valid(str(path)), path.name
        root = ET.parse(path).getroot()
        road = root.find("RoadNetwork/LogicFile").get("filepath")
        # OpenSCENARIO resolves a relative path from the folder of the file that holds it.
        assert (path.parent / road).resolve() == (exported_dataset / "map" / "network.xodr").resolve()
    assert _index(out)["openscenario_version"] == "1.2"
    # The check the writer runs on every file before it lands refuses a broken one, saying why.
    broken = ET.parse(files[0])
    broken.getroot().find("Entities/ScenarioObject").set("speed", "fast")
    broken.write(tmp_path / "broken.xosc")
    with pytest.raises(ValueError, match=r"not valid OpenSCENARIO 1\.2: .*'speed' is not allowed"):
        validate_xosc(tmp_path / "broken.xosc")


def test_initial_positions_and_trajectories_replay_the_recording(
    scenarios: tuple[Path, list[Path]], exported_dataset: Path
) -> None:
    out, _ = scenarios
    traj = pd.read_parquet(exported_dataset / "trajectories.parquet").set_index(["agent_id", "time_s"])
    for s in _index(out)["situations"]:
        root = ET.parse(out / s["file"]).getroot()
        objects = [o.get("name") for o in root.iter("ScenarioObject")]
        assert objects == [s["ego"], *s["actors"], *s["neighbours"]]
        ego = next(o for o in root.iter("ScenarioObject") if o.get("name") == s["ego"])
        props = {p.get("name"): p.get("value") for p in ego.iter("Property")}
        assert props["roadtwin:role"] == "ego" and props["roadtwin:agent_type"] == "av"
        for private in root.find("Storyboard/Init/Actions").iter("Private"):
            name = private.get("entityRef")
            pos = private.find("PrivateAction/TeleportAction/Position/WorldPosition")
            rec = traj.loc[(name, s["start_s"])]
            # Back from the rear axle (vehicles) to SUMO's front bumper, and from radians to SUMO's angle.
            x, y, h = float(pos.get("x")), float(pos.get("y")), float(pos.get("h"))
            back = 0.0 if rec["agent_type"] == "pedestrian" else REAR_AXLE_SHARE * float(rec["length_m"])
            assert x + back * math.cos(h) == pytest.approx(rec["x"], abs=2e-3)
            assert y + back * math.sin(h) == pytest.approx(rec["y"], abs=2e-3)
            assert (90 - math.degrees(h) - float(rec["heading_deg"]) + 180) % 360 - 180 == pytest.approx(
                0, abs=1e-2
            )
        # Each replayed agent follows a polyline of its recorded states, in absolute time from 0.
        stop = float(root.find("Storyboard/StopTrigger//SimulationTimeCondition").get("value"))
        assert stop == pytest.approx(s["end_s"] - s["start_s"])
        for group in root.iter("ManeuverGroup"):
            name = group.find("Actors/EntityRef").get("entityRef")
            vertices = group.findall(".//Polyline/Vertex")
            rows = traj.loc[name]
            rows = rows[(rows.index >= s["start_s"]) & (rows.index <= s["end_s"])]
            assert len(vertices) == len(rows)
            times = [float(v.get("time")) for v in vertices]
            assert times[0] == 0 and times[-1] <= stop and np.all(np.diff(times) > 0)
            assert group.find(".//TimeReference/Timing").get("domainAbsoluteRelative") == "absolute"


def test_opendrive_uses_the_network_coordinates(exported_dataset: Path) -> None:
    """The convention the files rely on: WorldPosition x/y in network metres lie on the .xodr roads."""
    header = ET.parse(exported_dataset / "map" / "network.xodr").getroot()
    offset = header.find("header/offset")
    manifest = json.loads((exported_dataset / "manifest.json").read_text(encoding="utf-8"))
    net_offset = manifest["projection"]["net_offset"]
    assert float(offset.get("x")) == pytest.approx(-net_offset[0], abs=0.01)
    assert float(offset.get("y")) == pytest.approx(-net_offset[1], abs=0.01)
    lanes = pd.read_parquet(exported_dataset / "map" / "lanes.parquet", columns=["kind", "x", "y"])
    starts = np.array([(x[0], y[0]) for x, y in zip(lanes["x"], lanes["y"], strict=True)])
    gaps = []
    for road in header.iter("road"):
        if road.get("junction") != "-1":
            continue
        g = road.find("planView/geometry")
        gaps.append(np.hypot(*(starts - [float(g.get("x")), float(g.get("y"))]).T).min())
    # A road's reference line starts at the outer edge of its lanes: within a lane width of one.
    assert len(gaps) > 100 and np.percentile(gaps, 99) < 4.0


@pytest.mark.parametrize(
    ("angle", "h", "dx", "dy"),
    [(0, math.pi / 2, 0, -4), (90, 0, -4, 0), (180, -math.pi / 2, 0, 4), (270, math.pi, 4, 0)],
)
def test_reference_point_converts_sumo_angle_and_bumper(angle: float, h: float, dx: float, dy: float) -> None:
    x, y, heading = reference_point(
        np.array([10.0, 10.0]), np.array([20.0, 20.0]), np.array([angle, angle]), np.array([5.0, 5.0]),
        vehicle=np.array([True, False]),
    )  # fmt: skip
    assert heading == pytest.approx([h, h])
    assert (x[0] - 10, y[0] - 20) == pytest.approx((dx, dy), abs=1e-9)
    assert (x[1], y[1]) == (10.0, 20.0)  # a pedestrian stays where SUMO puts it


def test_find_situations_limits_and_kinds(exported_dataset: Path) -> None:
    found = find_situations(exported_dataset, kinds="red_light", max_per_kind=3)
    assert [s.kind for s in found] == ["red_light"] * 3
    assert len({s.ego for s in found}) == 3
    with pytest.raises(InputError, match="kinds: expected one of red_light, cut_in, pedestrian_crossing"):
        find_situations(exported_dataset, kinds=["red_light", "tailgating"])


def test_cli_writes_files_and_refuses_bad_input(
    exported_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "osc"
    argv = ["datasets", "openscenario", str(exported_dataset), "--out", str(out)]
    assert main([*argv, "--kinds", "red_light,pedestrian_crossing", "--max-per-kind", "1"]) == 0
    assert sorted(s["kind"] for s in _index(out)["situations"]) == ["pedestrian_crossing", "red_light"]
    assert len(list(out.glob("*.xosc"))) == 2

    config = tmp_path / "osc.yaml"
    config.write_text(
        f"dataset: {exported_dataset}\nout: {tmp_path / 'y'}\nkinds: [cut_in]\nmax_per_kind: 1\n"
    )
    assert main(["datasets", "openscenario", "--config", str(config)]) == 0
    assert [s["kind"] for s in _index(tmp_path / "y")["situations"]] == ["cut_in"]

    capsys.readouterr()
    assert main([*argv, "--kinds", "red_light,tailgating"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tailgating" in err

    no_map = tmp_path / "no-map"
    no_map.mkdir()
    shutil.copy(exported_dataset / "trajectories.parquet", no_map)
    assert main(["datasets", "openscenario", str(no_map)]) == 2
    assert "map/network.xodr" in capsys.readouterr().err

    assert main(["datasets", "openscenario", str(tmp_path / "nothing")]) == 2
    assert "trajectories.parquet" in capsys.readouterr().err
