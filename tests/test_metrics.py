"""Metric definitions against hand-computed values (REFERENCE.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from roadtwin.sim.metrics import read_schedule, read_tripinfo, summarize

TRIPINFO = """<tripinfos>
  <tripinfo id="a" depart="10.00" departDelay="2.00" arrival="70.00" duration="60.00" routeLength="500"
            waitingTime="5.00" waitingCount="1" timeLoss="20.00" vType="car"/>
  <tripinfo id="b" depart="30.00" departDelay="0.00" arrival="-1.00" duration="70.00" routeLength="300"
            waitingTime="40.00" waitingCount="2" timeLoss="50.00" vType="bus" vaporized="end"/>
  <personinfo id="p0"><walk depart="0" arrival="50" duration="50" timeLoss="4"/></personinfo>
</tripinfos>
"""

# c never departs but is scheduled before b's actual departure (RESCO's rule misses it);
# d never departs and is scheduled after the latest departure; e is outside the window.
ROUTES = """<routes>
  <vehicle id="a" depart="8.00"/><vehicle id="b" depart="30.00"/>
  <trip id="c" depart="20.00" from="x" to="y"/><vehicle id="d" depart="60.00"/>
  <vehicle id="e" depart="150.00"/>
</routes>
"""


@pytest.fixture
def metrics(tmp_path: Path):
    (tmp_path / "t.xml").write_text(TRIPINFO)
    (tmp_path / "r.xml").write_text(ROUTES)
    vehicles, persons = read_tripinfo(tmp_path / "t.xml")
    schedule = read_schedule([tmp_path / "r.xml"])
    return summarize(vehicles=vehicles, schedule=schedule, begin=0, end=100, persons=persons, teleports=3)


def test_counts_never_drop_a_vehicle(metrics) -> None:
    assert metrics.vehicles_scheduled == 4
    assert metrics.vehicles_inserted == 2
    assert metrics.vehicles_finished == 1
    assert metrics.vehicles_still_running == 1
    assert metrics.vehicles_never_inserted == 2
    assert metrics.teleports == 3


def test_exact_delay_counts_every_missing_vehicle(metrics) -> None:
    # (20+2) + (50+0) + (100-20) + (100-60), over 4 vehicles
    assert metrics.exact_delay_s == pytest.approx((22 + 50 + 80 + 40) / 4)


def test_resco_delay_counts_only_vehicles_after_the_latest_departure(metrics) -> None:
    # latest actual departure is 30: only d (60) counts as never departed
    assert metrics.resco_delay_s == pytest.approx((22 + 50 + 40) / 3)


def test_blocked_counts_vehicles_kept_out_longer_than_a_minute(tmp_path: Path) -> None:
    (tmp_path / "t.xml").write_text(TRIPINFO.replace('departDelay="2.00"', 'departDelay="61.00"'))
    (tmp_path / "r.xml").write_text(ROUTES)
    vehicles, _ = read_tripinfo(tmp_path / "t.xml")
    schedule = read_schedule([tmp_path / "r.xml"])
    # a entered 61 s late (blocked); c was due 80 s before the end (blocked); d only 40 s (not yet)
    m = summarize(vehicles=vehicles, schedule=schedule, begin=0, end=100)
    assert (m.vehicles_never_inserted, m.vehicles_blocked) == (2, 2)
    assert summarize(vehicles=vehicles, schedule=schedule, begin=0, end=70).vehicles_blocked == 1


def test_means_over_finished_and_unfinished_records(metrics) -> None:
    assert metrics.mean_trip_time_s == pytest.approx(65)
    assert metrics.mean_time_loss_s == pytest.approx(35)
    assert metrics.mean_wait_s == pytest.approx(22.5)
    assert metrics.throughput_veh_h == pytest.approx(1 / (100 / 3600))
    assert metrics.persons == 1 and metrics.persons_finished == 1
    assert metrics.mean_person_time_loss_s == pytest.approx(4)


def test_empty_run_gives_nan_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "t.xml").write_text("<tripinfos/>")
    (tmp_path / "r.xml").write_text("<routes/>")
    vehicles, persons = read_tripinfo(tmp_path / "t.xml")
    m = summarize(
        vehicles=vehicles, schedule=read_schedule([tmp_path / "r.xml"]), begin=0, end=10, persons=persons
    )
    assert m.vehicles_scheduled == 0
    assert math.isnan(m.exact_delay_s)
    assert m.as_dict()["exact_delay_s"] is None
