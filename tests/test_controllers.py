"""Signal controllers: every one runs on RESCO's cologne1 and on the zone; each does what it claims."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml

from roadtwin.agents import (
    Actuated,
    MaxPressure,
    QueueProbe,
    Webster,
    controller_names,
    make_controller,
    resolve_scenario,
)
from roadtwin.errors import ConfigError, ScenarioError
from roadtwin.sim.run import run_inputs
from roadtwin.workspace import Workspace

CLASSIC = ("fixed", "webster", "actuated", "max-pressure", "max-pressure-naive")


def _has_resco() -> bool:
    spec = importlib.util.find_spec("sumo_rl")
    return bool(
        spec
        and spec.submodule_search_locations
        and (Path(next(iter(spec.submodule_search_locations))) / "nets/RESCO/cologne1").is_dir()
    )


needs_resco = pytest.mark.skipif(not _has_resco(), reason="sumo-rl's RESCO networks are not installed")


def _run(
    workspace: Workspace, scenario: str, spec: str, *, duration_s: float | None, seed: int = 0, **options
):
    resolved = resolve_scenario(scenario, workspace=workspace, duration_s=duration_s)
    controller = make_controller(spec, **options)
    probe = QueueProbe(controller, interval_s=resolved.decision_interval_s)
    result = run_inputs(
        lambda out: resolved.make_inputs(out, seed),
        name=resolved.name,
        seed=seed,
        config=resolved.config,
        workspace=workspace,
        controller=probe,
        progress=False,
        report=False,
    )
    return result, controller, probe


def _tls_programs(net_file: Path, additional: Path | None) -> dict[str, tuple[str, list[tuple[float, str]]]]:
    """Active program id and phases of every signal, as SUMO loads them."""
    from roadtwin.sim.backend import start
    from roadtwin.toolchain import binary

    cmd = [binary("sumo"), "-n", str(net_file), "--no-step-log", "true"]
    if additional is not None:
        cmd += ["-a", str(additional)]
    with start(cmd, backend="libsumo") as session:
        tl = session.conn.trafficlight
        out = {}
        for tls in tl.getIDList():
            pid = tl.getProgram(tls)
            logic = next(lg for lg in tl.getAllProgramLogics(tls) if lg.programID == pid)
            out[tls] = (pid, [(float(p.duration), p.state) for p in logic.phases])
        return out


def test_registry_names_every_classic_controller() -> None:
    assert set(CLASSIC) <= set(controller_names())
    with pytest.raises(ConfigError, match="controller"):
        make_controller("no-such-controller")


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_green"):
        Actuated(min_green=30, max_green=20)
    with pytest.raises(ConfigError, match="decision_interval_s"):
        MaxPressure(decision_interval_s=3, yellow_time=3)
    with pytest.raises(ScenarioError, match="scenario"):
        resolve_scenario("atlantis", workspace=Workspace.at("unused"))


@needs_resco
@pytest.mark.parametrize("spec", CLASSIC)
def test_each_controller_runs_on_cologne1(tmp_path: Path, spec: str) -> None:
    result, _, probe = _run(Workspace.at(tmp_path), "cologne1", spec, duration_s=600)
    assert (result.run_dir / "metrics.json").is_file()
    assert (result.run_dir / "tripinfo.xml").is_file()
    assert result.metrics.vehicles_inserted > 200
    assert np.isfinite(result.metrics.resco_delay_s)
    assert probe.queue >= 0
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert config["run"]["controller"] == spec


@needs_resco
def test_webster_and_actuated_replace_the_programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative folders, as with the default workspace ./roadtwin-data: SUMO's tools run in another folder.
    monkeypatch.chdir(tmp_path)
    resolved = resolve_scenario("cologne1", workspace=Workspace.at("ws"), duration_s=600)
    inputs = resolved.make_inputs(Path("in"), 0)
    fixed = _tls_programs(inputs.net_file, None)
    for controller, pid in ((Webster(), "webster"), (Actuated(), "actuated")):
        prepared = controller.prepare(inputs, work_dir=Path(pid))
        assert len(prepared.additional_files) == 1
        active = _tls_programs(inputs.net_file, prepared.additional_files[-1])
        assert {p for p, _ in active.values()} == {pid}  # loaded last = active
        assert all(active[t][1] != fixed[t][1] for t in fixed if pid == "webster")
    assert 'type="actuated"' in (tmp_path / "actuated" / "actuated.add.xml").read_text()


@needs_resco
def test_webster_keeps_the_programs_of_signals_the_tool_cannot_read(tmp_path: Path) -> None:
    from roadtwin.agents.webster import _unsupported_signals

    resolved = resolve_scenario("ingolstadt21", workspace=Workspace.at(tmp_path), duration_s=300)
    inputs = resolved.make_inputs(tmp_path / "in", 0)
    skipped = _unsupported_signals(inputs.net_file)
    assert skipped == ["243641585", "cluster_1427494838_273472399"]  # shared and missing link indices
    prepared = Webster().prepare(inputs, work_dir=tmp_path / "webster")  # the tool crashed on them
    timed = _tls_programs(inputs.net_file, prepared.additional_files[-1])
    assert {t for t, (pid, _) in timed.items() if pid == "webster"}.isdisjoint(skipped)
    assert sum(pid == "webster" for pid, _ in timed.values()) >= 15


@needs_resco
def test_actuated_green_durations_vary(tmp_path: Path) -> None:
    from roadtwin.sim.backend import start
    from roadtwin.toolchain import binary

    resolved = resolve_scenario("cologne1", workspace=Workspace.at(tmp_path), duration_s=900)
    inputs = Actuated().prepare(resolved.make_inputs(tmp_path / "in", 0), work_dir=tmp_path / "in")
    cmd = [
        binary("sumo"), "-n", str(inputs.net_file), "-r", str(inputs.route_files[0]),
        "-a", str(inputs.additional_files[0]), "-b", f"{inputs.begin:g}", "--no-step-log", "true",
        "--no-warnings", "true",
    ]  # fmt: skip
    durations: dict[int, list[float]] = {}
    with start(cmd, backend="libsumo") as session:
        tl = session.conn.trafficlight
        tls = tl.getIDList()[0]
        last, since = tl.getPhase(tls), inputs.begin
        for _ in range(900):
            session.step()
            phase = tl.getPhase(tls)
            if phase != last:
                durations.setdefault(last, []).append(session.time - since)
                last, since = phase, session.time
    varied = [p for p, d in durations.items() if len(set(d)) > 2]
    assert varied, durations


@needs_resco
def test_max_pressure_respects_min_and_max_green(tmp_path: Path) -> None:
    result, controller, _ = _run(
        Workspace.at(tmp_path), "cologne1", "max-pressure", duration_s=1800, min_green=10, max_green=40
    )
    assert result.metrics.vehicles_finished > 0
    log = controller.green_log
    by_signal: dict[int, list[tuple[float, int]]] = {}
    for t, s, g in log:
        by_signal.setdefault(s, []).append((t, g))
    switches = 0
    for starts in by_signal.values():
        for (t0, _), (t1, _) in itertools.pairwise(starts):
            green = t1 - 3.0 - t0  # the next green starts after a 3 s yellow
            assert 10.0 <= green <= 40.0 + 1e-9, (t0, t1)
            switches += 1
    assert switches > 20


@needs_resco
def test_max_pressure_beats_fixed_time_on_cologne1(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    fixed, _, fixed_probe = _run(ws, "cologne1", "fixed", duration_s=1800)
    mp, _, mp_probe = _run(ws, "cologne1", "max-pressure", duration_s=1800)
    assert mp.metrics.resco_delay_s < 0.9 * fixed.metrics.resco_delay_s
    assert mp.metrics.exact_delay_s < 0.9 * fixed.metrics.exact_delay_s
    assert mp_probe.queue < fixed_probe.queue


@needs_resco
def test_guard_keeps_max_pressure_from_gridlocking_ingolstadt7(tmp_path: Path) -> None:
    """REFERENCE.md: a naive max-pressure leaves 270 vehicles uninserted on ingolstadt7's hour."""
    ws = Workspace.at(tmp_path)
    naive, _, _ = _run(ws, "ingolstadt7", "max-pressure-naive", duration_s=None)
    guarded, _, _ = _run(ws, "ingolstadt7", "max-pressure", duration_s=None)
    assert naive.metrics.vehicles_never_inserted > 100
    assert guarded.metrics.vehicles_never_inserted <= 10
    assert guarded.metrics.exact_delay_s < 0.5 * naive.metrics.exact_delay_s


@pytest.fixture(scope="module")
def zone_scenario(tmp_path_factory: pytest.TempPathFactory, zone_net: Path) -> Path:
    """The built-in morning peak on the session's zone network, 5 minutes, no walkers."""
    from roadtwin.sim.scenario import builtin_scenario

    data = yaml.safe_load(builtin_scenario().read_text(encoding="utf-8"))
    data.update(
        {
            "name": "zone",
            "network": str(zone_net),
            "begin": "07:30",
            "end": "07:35",
            "pedestrians": {"per_hour": 0},
        }
    )
    path = tmp_path_factory.mktemp("zone_scenario") / "zone.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("spec", CLASSIC)
def test_each_controller_runs_on_the_zone(tmp_path: Path, zone_scenario: Path, spec: str) -> None:
    result, _, probe = _run(Workspace.at(tmp_path), str(zone_scenario), spec, duration_s=300)
    assert (result.run_dir / "metrics.json").is_file()
    assert result.metrics.vehicles_inserted > 50
    assert probe.queue >= 0


def test_max_pressure_feeds_a_split_link_only_while_its_far_end_drains_it(ingolstadt21) -> None:
    from types import SimpleNamespace

    from roadtwin.sim.signals import SignalLayout

    lay = SignalLayout(ingolstadt21, ingolstadt21.controllable())
    ctl = MaxPressure()
    ctl.layout = lay
    ctl._splits = lay.split_links(max_m=ctl.options["split_m"])
    assert len(ctl._splits) == 16  # movements onto the two split crossings' four links
    seen = set()
    for far_green in range(int(lay.n_greens.max())):  # the far signals in each of their greens
        green = np.zeros(lay.n_signals, dtype=np.intp)
        for _, drains in ctl._splits:
            s = lay.move_owner[drains[0]]
            green[s] = min(far_green, lay.n_greens[s] - 1)
        ctl.actuator = SimpleNamespace(green=green)
        incoming = np.zeros(len(lay.lanes))
        for m, _ in ctl._splits:
            incoming[lay.move_in[m]] = 6.0  # a queue in front of every feeder
        room = np.ones(len(lay.move_in), dtype=bool)
        joined = incoming.copy()
        ctl._join_splits(joined, room)
        for m, drains in ctl._splits:
            s = lay.move_owner[drains[0]]
            draining = lay.green_serves[lay.green_offset[s] + green[s], drains].any()
            assert room[m] == draining  # fed only while drained
            seen.add(bool(draining))
            assert (
                joined[lay.move_in[drains[0]]] > incoming[lay.move_in[drains[0]]]
            )  # the feeding queue counts
        others = np.setdiff1d(np.arange(len(room)), [m for m, _ in ctl._splits])
        assert room[others].all()
    assert seen == {True, False}


def test_a_split_crossing_never_shows_a_green_pair_that_feeds_a_link_its_far_end_does_not_drain(
    ingolstadt21,
) -> None:
    from roadtwin.sim.signals import SignalLayout

    lay = SignalLayout(ingolstadt21, ingolstadt21.controllable())
    crossings = lay.split_crossings(max_m=25.0)
    links = lay.split_links(max_m=25.0)
    names = {frozenset(lay.tls_ids[s] for s in x.signals): x for x in crossings}
    assert set(names) == {
        frozenset({"30503246", "30624898"}),
        frozenset({"243641585", "gneJ257"}),
    }
    for x in crossings:
        a, b = x.signals
        # Both: 0 runs the arterial both ways, 1 drains the link only, 2 the side street (which feeds
        # the link): the side streets cannot run together nor beside the other's two-way green.
        assert x.compatible.tolist() == [[True, True, False], [True, True, True], [False, True, False]]
        for ga, gb in itertools.product(range(lay.n_greens[a]), range(lay.n_greens[b])):
            green = {a: ga, b: gb}
            fed_undrained = any(
                lay.green_serves[lay.green_offset[o] + green[o], m]
                and not lay.green_serves[lay.green_offset[f] + green[f], drains].any()
                for m, drains in links
                for o, f in [(int(lay.move_owner[m]), int(lay.move_owner[drains[0]]))]
                if {o, f} == {a, b}
            )
            assert x.compatible[ga, gb] == (not fed_undrained)
    assert lay.split_crossings(max_m=0) == []


@needs_resco
def test_max_pressure_runs_a_split_crossing_as_one(tmp_path: Path, ingolstadt21) -> None:
    """Over 20 minutes of ingolstadt21, the two signals of each split crossing never show an
    incompatible pair of greens (without the split guard they do, for minutes)."""
    from roadtwin.sim.signals import SignalLayout

    lay = SignalLayout(ingolstadt21, ingolstadt21.controllable())  # the controller's signal order

    def incompatible_seconds(controller: MaxPressure) -> int:
        log = controller.green_log
        bad = 0
        for x in lay.split_crossings(max_m=25.0):
            a, b = x.signals
            starts = {s: [(t, g) for t, s2, g in log if s2 == s] for s in (a, b)}
            for t in range(int(log[0][0]), int(log[-1][0])):
                now = [max((e for e in starts[s] if e[0] <= t), default=(0, 0))[1] for s in (a, b)]
                bad += not x.compatible[now[0], now[1]]
        return bad

    ws = Workspace.at(tmp_path)
    _, joint, _ = _run(ws, "ingolstadt21", "max-pressure", duration_s=1200)
    _, unguarded, _ = _run(ws, "ingolstadt21", "max-pressure", duration_s=1200, split_m=0)
    assert len(joint.green_log) > 200
    assert incompatible_seconds(joint) == 0
    assert incompatible_seconds(unguarded) > 60
