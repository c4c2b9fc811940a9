"""Sensor views of automated vehicles: range, ego frame, occlusion, noise, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from roadtwin.datasets import perception
from roadtwin.datasets.perception import AV_VIEWS_SCHEMA, NOISE_GROWTH_M, sensor_views
from roadtwin.errors import InputError

COLUMNS = ("agent_id", "agent_type", "time_s", "x", "y", "heading_deg", "speed_mps", "length_m", "width_m")
CAR = (5.0, 1.8)  # length, width
EXACT = {"position_noise_m": 0.0, "speed_noise_mps": 0.0}


def _table(rows: list[tuple]) -> pa.Table:
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)})


def _agent(agent_id: str, kind: str, t: float, centre: tuple[float, float], heading_deg: float, **kw: float):
    """A row whose box centre is ``centre`` (SUMO reports the front bumper, half a length ahead)."""
    length, width = kw.get("length", CAR[0]), kw.get("width", CAR[1])
    h = math.radians(heading_deg)
    x = centre[0] + math.sin(h) * length / 2
    y = centre[1] + math.cos(h) * length / 2
    return (agent_id, kind, t, x, y, heading_deg, kw.get("speed", 10.0), length, width)


def _scene(t: float = 0.0) -> list[tuple]:
    """Ego at the origin heading east; a car ahead, one hidden behind it, one out of range, a walker."""
    return [
        _agent("ego", "av", t, (0.0, 0.0), 90.0, speed=10.0),
        _agent("ahead", "car", t, (12.0, 0.0), 90.0, speed=8.0),
        _agent("hidden", "car", t, (30.0, 0.0), 90.0, speed=9.0),
        _agent("far", "car", t, (80.0, 20.0), 90.0),
        _agent("walker", "pedestrian", t, (0.0, 6.0), 0.0, speed=1.2, length=0.215, width=0.478),
    ]


def _rows(views: pa.Table) -> dict[str, dict]:
    return {row["object_id"]: row for row in views.to_pylist()}


def test_scene_range_occlusion_and_ego_frame() -> None:
    views = sensor_views(_table(_scene()), **EXACT)
    assert views.schema == AV_VIEWS_SCHEMA
    rows = _rows(views)
    assert set(rows) == {"ahead", "walker"}  # "far" is out of range, "hidden" is behind "ahead"
    ahead, walker = rows["ahead"], rows["walker"]
    assert ahead["ego_id"] == "ego" and ahead["object_type"] == "car"
    assert ahead["visible_fraction"] == pytest.approx(1.0)
    assert (ahead["rel_x"], ahead["rel_y"], ahead["range_m"]) == pytest.approx((12.0, 0.0, 12.0), abs=1e-4)
    assert ahead["rel_speed_mps"] == pytest.approx(-2.0)
    # The walker is 6 m to the north of an east-bound ego: on its left.
    assert (walker["rel_x"], walker["rel_y"]) == pytest.approx((0.0, 6.0), abs=1e-4)
    assert walker["object_type"] == "pedestrian"

    everything = _rows(sensor_views(_table(_scene()), min_visible=0.0, **EXACT))
    assert everything["hidden"]["visible_fraction"] == pytest.approx(0.0, abs=0.02)
    assert "far" not in everything


@pytest.mark.parametrize("heading", [0.0, 37.0, 90.0, 210.0, 333.0])
def test_ego_frame_is_x_forward_y_left(heading: float) -> None:
    h = math.radians(heading)
    forward = np.array([math.sin(h), math.cos(h)])
    left = np.array([-math.cos(h), math.sin(h)])
    ego_c = np.array([500.0, -300.0])
    offsets = {"front_left": (20.0, 7.0), "behind_right": (-15.0, -4.0), "side": (1.0, -9.0)}
    rows = [_agent("ego", "av", 5.0, tuple(ego_c), heading)]
    for name, (fx, ly) in offsets.items():
        rows.append(_agent(name, "truck", 5.0, tuple(ego_c + fx * forward + ly * left), heading + 45.0))
    seen = _rows(sensor_views(_table(rows), **EXACT))
    assert set(seen) == set(offsets)
    for name, (fx, ly) in offsets.items():
        assert (seen[name]["rel_x"], seen[name]["rel_y"]) == pytest.approx((fx, ly), abs=1e-3)
        assert seen[name]["range_m"] == pytest.approx(math.hypot(fx, ly), abs=1e-3)


def _covered_share(target: tuple[float, float], blocker: tuple[float, float]) -> float:
    """Exact share of the target's angular interval outside the blocker's (both as (lo, hi))."""
    lo, hi = target
    overlap = max(0.0, min(hi, blocker[1]) - max(lo, blocker[0]))
    return 1.0 - overlap / (hi - lo)


def _interval(centre: tuple[float, float], length: float, width: float) -> tuple[float, float]:
    """Bearings of an east-facing box seen from the origin (ego heading east: x forward, y left)."""
    corners = [(centre[0] + a * length / 2, centre[1] + b * width / 2) for a in (-1, 1) for b in (-1, 1)]
    angles = [math.atan2(y, x) for x, y in corners]
    return min(angles), max(angles)


@pytest.mark.parametrize("lateral", [0.6, 1.0, 1.4, 2.5])
def test_partial_occlusion_matches_interval_arithmetic(lateral: float) -> None:
    # In the ego frame (heading east) "x forward, y left" are east and north.
    near_c, far_c = (10.0, 0.0), (30.0, lateral)
    rows = [
        _agent("ego", "av", 0.0, (0.0, 0.0), 90.0),
        _agent("near", "car", 0.0, near_c, 90.0),
        _agent("far", "bus", 0.0, far_c, 90.0, length=12.0, width=2.5),
    ]
    seen = _rows(sensor_views(_table(rows), min_visible=0.0, **EXACT))
    expected = _covered_share(_interval(far_c, 12.0, 2.5), _interval(near_c, *CAR))
    assert seen["near"]["visible_fraction"] == pytest.approx(1.0)
    assert seen["far"]["visible_fraction"] == pytest.approx(expected, abs=0.05)


def test_field_of_view_and_detection_threshold() -> None:
    rows = [
        *_scene(),
        _agent("behind", "car", 0.0, (-20.0, 0.0), 90.0),
        # A bus in the next lane, its left part behind "ahead": partly visible.
        _agent("peek", "bus", 0.0, (40.0, -4.0), 90.0, length=12.0, width=2.5),
    ]
    front = _rows(sensor_views(_table(rows), fov_deg=120.0, **EXACT))
    assert set(front) == {"ahead", "peek"}  # the walker (at 90°) and "behind" are outside ±60°
    partly = front["peek"]["visible_fraction"]
    assert 0.1 < partly < 0.9
    strict = _rows(sensor_views(_table(rows), fov_deg=120.0, min_visible=partly + 0.05, **EXACT))
    assert set(strict) == {"ahead"}


def test_same_seed_same_table_and_noise_is_per_row() -> None:
    table = _table(_scene() + _scene(1.0))
    a, b = sensor_views(table, seed=7), sensor_views(table, seed=7)
    assert a.equals(b)
    assert not a.equals(sensor_views(table, seed=8))
    # Shuffled input rows and an extra far-away agent change nothing for the rows already there.
    order = np.random.default_rng(0).permutation(table.num_rows)
    extra = _table([_agent("elsewhere", "car", 0.0, (-2000.0, 0.0), 0.0)])
    assert sensor_views(pa.concat_tables([table.take(order), extra]), seed=7).equals(a)


def test_noise_magnitude_grows_with_range() -> None:
    # One ego and two cars (25 m ahead, 50 m to the left) over 4,000 steps.
    n = 4000
    rows = []
    for k in range(n):
        t = k * 0.1
        rows += [
            _agent("ego", "av", t, (0.0, 0.0), 90.0, speed=10.0),
            _agent("a25", "car", t, (25.0, 0.0), 90.0, speed=12.0),
            _agent("b50", "car", t, (0.0, 50.0), 90.0, speed=12.0),
        ]
    views = sensor_views(_table(rows), seed=3, position_noise_m=0.1, speed_noise_mps=0.2)
    assert views.num_rows == 2 * n
    df = views.to_pandas()
    for name, (x, y), dist in (("a25", (25.0, 0.0), 25.0), ("b50", (0.0, 50.0), 50.0)):
        obj = df[df["object_id"] == name]
        growth = 1 + dist / NOISE_GROWTH_M
        err_x, err_y = obj["rel_x"] - x, obj["rel_y"] - y
        err_v = obj["rel_speed_mps"] - 2.0
        for err, sigma in ((err_x, 0.1 * growth), (err_y, 0.1 * growth), (err_v, 0.2 * growth)):
            assert abs(err.mean()) < 4 * sigma / math.sqrt(n)
            assert err.std() == pytest.approx(sigma, rel=0.06)
        assert abs(np.corrcoef(err_x, err_y)[0, 1]) < 0.06
        assert np.allclose(obj["range_m"], dist)  # the true distance


def test_sensor_period_selects_steps() -> None:
    rows = [row for k in range(20) for row in _scene(100.0 + k * 0.1)]
    times = sensor_views(_table(rows), step_s=0.5).column("time_s").to_pylist()
    assert sorted(set(times)) == pytest.approx([100.0, 100.5, 101.0, 101.5])


def test_neighbours_match_brute_force_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A random crowd: with no threshold, every agent within range is listed, none beyond, any chunking."""
    rng = np.random.default_rng(1)
    rows = []
    for step in range(12):
        for i in range(120):
            kind = "av" if i < 10 else ("pedestrian" if i % 7 == 0 else "car")
            xy = (float(rng.uniform(0, 400)), float(rng.uniform(0, 150)))
            rows.append(_agent(f"v{i:03d}", kind, float(step), xy, float(rng.uniform(0, 360))))
    table = _table(rows)
    views = sensor_views(table, min_visible=0.0, range_m=60.0, seed=2)
    monkeypatch.setattr(perception, "_CHUNK_ROWS", 250)
    assert sensor_views(table, min_visible=0.0, range_m=60.0, seed=2).equals(views)

    got = set(zip(*(views.column(c).to_pylist() for c in ("time_s", "ego_id", "object_id")), strict=True))
    df = table.to_pandas()
    h = np.radians(df["heading_deg"])
    df["cx"], df["cy"] = df["x"] - np.sin(h) * df["length_m"] / 2, df["y"] - np.cos(h) * df["length_m"] / 2
    want = set()
    for t, step in df.groupby("time_s"):
        xy = step[["cx", "cy"]].to_numpy()
        dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        for i in np.flatnonzero(step["agent_type"].to_numpy() == "av"):
            for j in np.flatnonzero(dist[i] <= 60.0):
                if i != j:
                    want.add((t, step["agent_id"].iloc[i], step["agent_id"].iloc[j]))
    assert got == want
    # Crowds hide things: some objects are partly or fully hidden.
    assert 0 < pa.compute.sum(pa.compute.less(views.column("visible_fraction"), 0.5)).as_py() < views.num_rows


def test_no_automated_vehicle_gives_an_empty_table() -> None:
    rows = [r for r in _scene() if r[1] != "av"]
    views = sensor_views(_table(rows))
    assert views.num_rows == 0 and views.schema == AV_VIEWS_SCHEMA


def test_bad_input_names_the_field() -> None:
    with pytest.raises(InputError, match="heading_deg"):
        sensor_views(_table(_scene()).drop_columns(["heading_deg"]))
    with pytest.raises(InputError, match="min_visible"):
        sensor_views(_table(_scene()), min_visible=1.5)
    with pytest.raises(InputError, match="step_s"):
        sensor_views(_table(_scene()), step_s=0.0)


def test_real_exported_dataset(request: pytest.FixtureRequest) -> None:
    """On a dataset exported from a real SUMO run: views are consistent with the trajectories."""
    try:
        dataset = request.getfixturevalue("exported_dataset")
    except pytest.FixtureLookupError:
        pytest.skip("the exported_dataset fixture (tests/conftest.py) is not there yet")
    import pyarrow.parquet as pq

    folder = Path(getattr(dataset, "path", dataset))
    if folder.is_file():
        folder = folder.parent
    traj = pq.read_table(folder / "trajectories.parquet")
    views = sensor_views(traj, seed=0)
    assert views.schema == AV_VIEWS_SCHEMA
    avs = set(traj.filter(pa.compute.equal(traj["agent_type"], "av"))["agent_id"].to_pylist())
    if not avs:
        pytest.skip("the exported run has no automated vehicle")
    assert views.num_rows > 0
    assert set(views["ego_id"].to_pylist()) <= avs
    df = views.to_pandas()
    assert (df["range_m"] <= 75.0).all() and (df["ego_id"] != df["object_id"]).all()
    assert df["visible_fraction"].between(0.1, 1.0).all()
    # Measured positions agree with the true range within the noise (0.1 m at 0 m to 0.4 m at 75 m, 5 sigma).
    err = np.hypot(df["rel_x"], df["rel_y"]) - df["range_m"]
    assert (err.abs() < 5 * 0.1 * (1 + df["range_m"] / NOISE_GROWTH_M) * math.sqrt(2)).all()
    assert set(df["object_type"]) <= {"car", "bus", "truck", "av", "pedestrian"}
    if (folder / "sensors" / "av_views.parquet").is_file():
        assert pq.read_schema(folder / "sensors" / "av_views.parquet").remove_metadata() == AV_VIEWS_SCHEMA
