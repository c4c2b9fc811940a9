"""Vehicle types: the fleet distribution, automated vehicles on ACC/CACC, and what they do to delay."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from roadtwin.sim.inputs import prepare_inputs
from roadtwin.sim.vehicles import MIX_ID, vtype_attributes, write_vtypes
from roadtwin.sim.weather import weather_effect


def test_vtypes_file_defines_the_fleet_and_its_distribution(tmp_path: Path) -> None:
    path = write_vtypes(
        tmp_path / "vtypes.add.xml",
        shares={"car": 0.8, "bus": 0.03, "truck": 0.07, "av": 0.1},
        av_model="ACC",
        av_parameters={"speedControlGain": -0.4},
    )
    root = ET.parse(path).getroot()
    types = {t.get("id"): t for t in root.iter("vType")}
    assert set(types) == {"car", "bus", "truck", "av"}
    assert [types[k].get("vClass") for k in ("car", "bus", "truck", "av")] == [
        "passenger",
        "bus",
        "truck",
        "passenger",
    ]
    av = types["av"]
    assert av.get("carFollowModel") == "ACC" and av.get("speedControlGain") == "-0.4"
    assert {p.get("key"): p.get("value") for p in av.iter("param")} == {
        "automated": "true",
        "role": "robotaxi",
    }
    assert types["car"].get("carFollowModel") is None  # humans keep SUMO's Krauss model
    (dist,) = root.iter("vTypeDistribution")
    assert dist.get("id") == MIX_ID
    assert dist.get("vTypes") == "car bus truck av" and dist.get("probabilities") == "0.8 0.03 0.07 0.1"


def test_zero_shares_are_never_drawn(tmp_path: Path) -> None:
    root = ET.parse(write_vtypes(tmp_path / "v.add.xml", shares={"car": 1.0, "av": 0.0})).getroot()
    (dist,) = root.iter("vTypeDistribution")
    assert dist.get("vTypes") == "car" and dist.get("probabilities") == "1"


def test_weather_scales_every_vtype() -> None:
    snow = weather_effect("snow", "heavy")
    for kind in ("car", "bus", "truck", "av"):
        clear, snowy = vtype_attributes(kind), vtype_attributes(kind, weather=snow)
        assert float(snowy["accel"]) == pytest.approx(float(clear["accel"]) * snow.accel, rel=1e-3)
        assert float(snowy["tau"]) == pytest.approx(float(clear["tau"]) * snow.headway, rel=1e-3)
        assert float(snowy["speedFactor"]) == pytest.approx(snow.speed)


def test_av_time_gap_is_the_cacc_tau(grid_scenario, tmp_path: Path) -> None:
    sc = grid_scenario(
        step_length=0.5,
        vehicle_mix={"car": 0.5, "bus": 0.0, "truck": 0.0, "av": 0.5},
        automation={"model": "CACC", "time_gap": 0.6},
    )
    inputs = prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path)
    av = next(t for t in ET.parse(inputs.additional_files[0]).getroot().iter("vType") if t.get("id") == "av")
    assert (av.get("carFollowModel"), av.get("tau")) == ("CACC", "0.6")
    assert inputs.extra_args[:2] == ("--step-length", "0.5")


def test_all_cacc_fleet_does_not_raise_mean_time_loss(
    grid_scenario, run_sumo, time_loss, tmp_path: Path
) -> None:
    busy = {"veh_per_hour": 3000, "min_distance": 300, "interval": 300}
    losses = {}
    for name, mix in (
        ("human", {"car": 1.0, "bus": 0.0, "truck": 0.0, "av": 0.0}),
        ("cacc", {"car": 0.0, "bus": 0.0, "truck": 0.0, "av": 1.0}),
    ):
        sc = grid_scenario(demand=busy, vehicle_mix=mix)
        trips = run_sumo(prepare_inputs(sc, net_file=sc.network, out_dir=tmp_path / name), tmp_path / name)
        assert all(float(t["arrival"]) >= 0 for t in trips)
        losses[name] = time_loss(trips)
    # CACC neither dawdles nor reacts late: queues discharge faster than behind human drivers.
    assert losses["cacc"] < losses["human"]
