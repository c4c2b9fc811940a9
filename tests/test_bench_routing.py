"""The routing benchmark's reference cells: the incident scenario with its incidents cleared."""

from __future__ import annotations

from pathlib import Path

from roadtwin.sim.scenario import builtin_scenario, load_scenario


def test_cleared_copy_keeps_the_scenario_but_its_incidents(load_benchmark, tmp_path: Path) -> None:
    bench = load_benchmark("routing")
    path = bench.cleared_scenario("yizhuang_incident", tmp_path)
    assert path is not None and path.parent == tmp_path
    original = load_scenario(builtin_scenario("yizhuang_incident"))
    cleared = load_scenario(path)
    assert original.incidents and not cleared.incidents
    assert cleared.name == "yizhuang_incident_cleared"
    skip = {"incidents", "name"}
    assert cleared.model_dump(exclude=skip) == original.model_dump(exclude=skip)
    # nothing to clear: no reference cells
    assert bench.cleared_scenario("yizhuang_morning_peak", tmp_path) is None
    assert bench.cleared_scenario("cologne1", tmp_path) is None


def test_reference_row_reports_what_the_incident_costs(load_benchmark) -> None:
    bench = load_benchmark("routing")
    rows = [
        {"signals": "fixed", "routing": r, "penetration": p, "seed": s, "trip_time_s": t, "exact_delay_s": 0.0,
         "throughput_veh_h": 0.0, "never_inserted": 0, "still_running": 0, "reroutes": 0}
        for r, p, times in (("none", 0.0, (500.0, 520.0)), (bench.CLEARED, 0.0, (400.0, 416.0)),
                            ("guidance", 0.3, (420.0, 440.0)))
        for s, t in enumerate(times)
    ]  # fmt: skip
    cells = [("fixed", "none", 0.0), ("fixed", bench.CLEARED, 0.0), ("fixed", "guidance", 0.3)]
    summary = bench.summarize(rows, cells=cells)
    cleared = next(r for r in summary if r["routing"] == bench.CLEARED)
    assert round(cleared["vs_none"], 4) == -0.2  # 408 against 510
    lines = bench.goal_lines(summary)
    assert lines[0].startswith("- fixed: without the incident, travel time -20.0 % vs none")
    assert "goal -15 %: met" in lines[1] and "no rerouting-device cell" in lines[1]
    assert "none, incident cleared" in bench.print_table(summary, title="t")
