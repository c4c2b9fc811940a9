"""The dashboard: workspace reading stays inside the workspace, and every page works in a real browser."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadtwin.dashboards.data import (
    FORECAST_COLUMNS,
    STATE_COLUMNS,
    PathOutsideWorkspace,
    WorkspaceData,
    resolve_inside,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = {"network": "/", "forecast": "/forecast", "signals": "/signals", "training": "/training",
         "datasets": "/datasets", "whatif": "/whatif"}  # fmt: skip


# --- fixtures ------------------------------------------------------------------------------------------


def _fill_extras(root: Path, run_id: str) -> None:
    """An evaluation, a training run with TensorBoard events, a dataset and a twin store with forecasts."""
    import pandas as pd

    evaluation = root / "evaluations" / "t__20260101-000000"
    evaluation.mkdir(parents=True)
    rows = []
    for controller, delay in (("fixed", 110.0), ("max-pressure", 80.0)):
        for seed in (0, 1):
            rows.append({"scenario": "t", "controller": controller, "seed": seed, "resco_delay_s": delay + seed,
                         "exact_delay_s": delay + seed, "trip_time_s": 280.0, "wait_s": 70.0, "queue": 2.0 + seed,
                         "never_inserted": 0, "still_running": 300, "throughput_veh_h": 1600.0,
                         "run_dir": str(root / "runs" / run_id), "wall_time_s": 7.0})  # fmt: skip
    pd.DataFrame(rows).to_csv(evaluation / "results.csv", index=False)

    training = root / "runs" / "t__ppo__0__20260101-000000"
    (training / "tb" / "ppo_1").mkdir(parents=True)
    (training / "config.yaml").write_text("train: {algo: ppo, timesteps: 256}\nenv: {}\npolicy: {}\n")
    (training / "train.json").write_text(json.dumps({"timesteps": 256, "wall_time_s": 12.5}))
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(training / "tb" / "ppo_1"))
    for step in range(0, 256, 32):
        for tag, value in (("rollout/ep_rew_mean", -100 + step / 4), ("train/loss", 1.0 / (1 + step))):
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary))
    writer.close()

    dataset = root / "datasets" / "t-morning"
    dataset.mkdir(parents=True)
    (dataset / "manifest.json").write_text(json.dumps({"schema_version": "1.0", "scenario": {"name": "t"},
                                                       "files": ["trajectories.parquet"]}))  # fmt: skip
    (dataset / "trajectories.parquet").write_bytes(b"PAR1")

    _twin_store(root)


def _twin_store(root: Path) -> None:
    """A store written by the twin's own writers: 5- and 1-minute state, and persistence forecasts."""
    import numpy as np
    import pandas as pd

    from roadtwin.twin.estimation import write_state
    from roadtwin.twin.predict import issue_forecasts, write_forecasts
    from roadtwin.twin.store import Store
    from roadtwin.workspace import Workspace

    edges = ["100_88", "101_89"]
    with Store.of(Workspace.at(root)) as store:
        for res in (300, 60):
            times = pd.date_range("2026-01-01 07:00", "2026-01-01 08:59", freq=f"{res}s", tz="Asia/Shanghai")
            i = np.arange(len(times)) * res / 300
            state = pd.DataFrame([{"edge": e, "interval_start": t.tz_convert("UTC"), "resolution_s": res,
                                   "speed_kmh": 40.0 - k - 0.3 * i[j], "flow_veh_h": 400.0 + 10 * i[j] + 50 * k,
                                   "density_veh_km": 10.0, "confidence": 0.8}
                                  for k, e in enumerate(edges) for j, t in enumerate(times)])  # fmt: skip
            write_state(state, run_dir=root / "state-run", store=store)
            if res == 300:
                write_forecasts(issue_forecasts(state)["persistence"], store=store)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small workspace: one 15-minute run of the zone plus a fake evaluation, training run, dataset and store."""
    from roadtwin.sim.run import run_scenario
    from roadtwin.sim.scenario import Scenario
    from roadtwin.workspace import Workspace

    root = tmp_path_factory.mktemp("dash") / "ws"
    scenario = Scenario.model_validate({"name": "t", "network": "yizhuang", "begin": "07:45", "end": "08:00",
                                        "seed": 1, "demand": {"veh_per_hour": 3000}})  # fmt: skip
    result = run_scenario(scenario, workspace=Workspace.at(root), progress=False)
    _fill_extras(root, result.run_dir.name)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(root: Path) -> Iterator[str]:
    from werkzeug.serving import make_server

    from roadtwin.dashboards.app import create_app, warm

    app = create_app(workspace=root)
    warm(app)  # as `roadtwin dash` does
    server = make_server("127.0.0.1", _free_port(), app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(workspace: Path) -> Iterator[str]:
    """The dashboard over the small workspace, served on a free port."""
    yield from _serve(workspace)


@pytest.fixture(scope="session")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard over a workspace folder that does not exist."""
    yield from _serve(tmp_path_factory.mktemp("nows") / "missing")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright."""
    if not CHROMIUM.is_file():
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class _Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def open(self, url: str) -> Any:
        self.page.goto(url, wait_until="networkidle")
        self.page.wait_for_selector("#content .page", timeout=20_000)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture()
def tab(browser: Any) -> Iterator[_Page]:
    """A fresh browser tab."""
    page = _Page(browser)
    try:
        yield page
    finally:
        page.context.close()


# --- data.py safety (no browser) ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/etc/passwd", "runs/../../x", ""])
def test_names_outside_the_workspace_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(PathOutsideWorkspace):
        resolve_inside(tmp_path, name)


def test_reads_refuse_paths_outside_the_workspace(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    (outside / "tb").mkdir(parents=True)
    root = tmp_path / "ws"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "link").symlink_to(outside)
    data = WorkspaceData(root=root)
    for call in (
        lambda: data.metrics("../secret"),
        lambda: data.metrics("../../secret"),
        lambda: data.edgedata("/etc/passwd"),
        lambda: data.results("../../etc"),
        lambda: data.learning_curves("link"),
        lambda: data.training_info("/etc"),
    ):
        with pytest.raises(PathOutsideWorkspace):
            call()
    # A symlinked run folder pointing elsewhere is not listed either.
    assert data.runs(kind="training").empty


def test_a_missing_workspace_lists_nothing(tmp_path: Path) -> None:
    data = WorkspaceData(root=tmp_path / "missing")
    assert not data.exists
    assert (
        data.runs().empty and data.run_options() == [] and data.evaluations() == [] and data.datasets() == []
    )
    assert data.store_tables()[0] is None
    assert not (tmp_path / "missing").exists()  # reading does not create the workspace


def test_importing_the_package_starts_nothing() -> None:
    import subprocess
    import sys

    code = "import sys, roadtwin.dashboards as d; print(any(m in sys.modules for m in ('dash', 'plotly', 'flask')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_dash_command_listens_on_localhost_by_default(tmp_path: Path) -> None:
    from roadtwin.config import load_options
    from roadtwin.dashboards.commands import DashOptions

    opts = load_options(DashOptions, config=None, workspace=tmp_path, host=None, port=None)
    assert (opts.host, opts.port) == ("127.0.0.1", 8050)
    config = tmp_path / "dash.yaml"
    config.write_text("port: 9000\nhost: 0.0.0.0\n")
    assert load_options(DashOptions, config=config, workspace=None, host=None, port=None).port == 9000


def test_pages_take_plotly_basic_bundle_only_when_it_matches_plotly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import plotly.offline

    from roadtwin.dashboards import app as app_module

    def index() -> str:
        app_module.plotly_basic_matches.cache_clear()
        return app_module.create_app(workspace=tmp_path).server.test_client().get("/").get_data(as_text=True)

    page = index()
    assert "vendor/plotly-basic.min.js" in page and "package_data/plotly" not in page
    monkeypatch.setattr(plotly.offline, "get_plotlyjs_version", lambda: "0.0.1")
    page = index()  # another plotly.js: the full bundle, loaded with the other scripts
    assert "vendor/plotly-basic.min.js" not in page and "package_data/plotly" in page
    app_module.plotly_basic_matches.cache_clear()


def test_an_empty_workspace_explains_every_page(tmp_path: Path) -> None:
    import importlib

    from roadtwin.dashboards.pages import PAGES as MODULES

    data = WorkspaceData(root=tmp_path)
    for name in MODULES:
        layout = importlib.import_module(f"roadtwin.dashboards.pages.{name}").layout(data)
        text = str(layout.to_plotly_json())
        assert name == "whatif" or "empty-state" in text, name


def test_whatif_offers_the_zones_shipped_policy(tmp_path: Path) -> None:
    from roadtwin.dashboards import whatif

    assert whatif.available_controllers() == whatif.CONTROLLER_CHOICES  # the rl extra is installed here
    assert whatif.default_controller() == "rl:zone"
    with pytest.raises(ValueError, match="unknown controller 'rl:other'"):
        whatif.start_job(workspace=tmp_path, request=whatif.WhatIfRequest(controller="rl:other"))
    assert not (tmp_path / "whatif").exists()  # nothing started


def test_a_whatif_job_can_be_cancelled(workspace: Path) -> None:
    import time

    from roadtwin.dashboards import whatif

    job = whatif.start_job(
        workspace=workspace, request=whatif.WhatIfRequest(minutes=30, controller="actuated")
    )
    deadline = time.monotonic() + 60
    while whatif.job_status(workspace=workspace, job_id=job)["state"] != "running":
        assert time.monotonic() < deadline, whatif.job_status(workspace=workspace, job_id=job)
        time.sleep(0.2)
    proc = whatif._PROCS[job]
    assert whatif.cancel_job(workspace=workspace, job_id=job)
    assert proc.poll() is not None  # the job's process (and its libsumo) is gone
    assert whatif.job_status(workspace=workspace, job_id=job)["state"] == "cancelled"
    assert whatif.job_status(workspace=workspace, job_id="../../etc")["state"] == "unknown"


def test_workspace_data_reads_the_small_workspace(workspace: Path) -> None:
    data = WorkspaceData(root=workspace)
    run_id = data.run_options()[0]["value"]
    kpis = data.junction_table(run_id)
    assert len(kpis) == 88 and (kpis["delay_s"] >= 0).all() and kpis["vehicles"].sum() > 0
    assert data.learning_curves(data.runs(kind="training").id[0])["tag"].nunique() == 2
    forecasts, state, note = data.store_tables()
    assert forecasts is not None and state is not None and not note


def test_the_dashboard_reads_the_tables_the_twin_writes(workspace: Path) -> None:
    from roadtwin.twin.estimation import STATE_COLUMNS as TWIN_STATE
    from roadtwin.twin.predict import FORECAST_COLUMNS as TWIN_FORECASTS

    assert STATE_COLUMNS == TWIN_STATE and FORECAST_COLUMNS == TWIN_FORECASTS
    data = WorkspaceData(root=workspace)
    forecasts, state, method = data.twin_forecasts()
    assert method == "persistence" and forecasts is not None and state is not None
    assert set(forecasts["horizon_min"]) == {15, 30, 60} and (state["resolution_s"] == 300).all()
    # A persistence forecast 15 min ahead is the state 15 min earlier: it lines up with the actual by time.
    f = forecasts[(forecasts["edge"] == "100_88") & (forecasts["horizon_min"] == 15)].set_index("at")
    s = state[state["edge"] == "100_88"].set_index("at").sort_index()
    assert f.index[0].hour == 7 and str(f.index.tz) == "Asia/Shanghai"
    lag = s["flow_veh_h"].shift(3).reindex(f.index)
    ok = lag.notna()
    assert ok.sum() >= 18 and np.allclose(f.loc[ok, "flow_veh_h"], lag[ok])
    local = data.estimated_state(resolution_s=300)
    assert (
        local is not None and local["tod_s"].min() == 7 * 3600 and local["tod_s"].max() == 8 * 3600 + 55 * 60
    )


# --- the browser ----------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_renders_without_console_errors(server: str, tab: _Page, name: str) -> None:
    page = tab.open(server + PAGES[name])
    page.wait_for_timeout(800)
    tab.shot(name)
    assert page.locator(".empty-state").count() == 0 or name == "whatif", page.inner_text("#content")
    assert page.locator("text=Traceback").count() == 0
    assert tab.errors == []


@pytest.mark.browser
@pytest.mark.parametrize("name", list(PAGES))
def test_a_missing_workspace_shows_an_empty_state(empty_server: str, tab: _Page, name: str) -> None:
    page = tab.open(empty_server + PAGES[name])
    assert page.locator(".empty-state").count() == 1
    assert "does not exist" in page.inner_text(".empty-state")
    if name == "network":
        tab.shot("empty-workspace")
    assert tab.errors == []


@pytest.mark.browser
def test_clicking_a_junction_shows_its_kpis(server: str, tab: _Page) -> None:
    page = tab.open(server + "/")
    page.wait_for_selector("#net-map .scatterlayer .trace:last-child path.point", timeout=20_000)
    point = page.locator("#net-map .scatterlayer .trace:last-child path.point").nth(20)
    box = point.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)
    page.wait_for_selector("#junction-title", timeout=15_000)
    text = page.inner_text("#junction-kpis")
    assert "Delay" in text and "Queue" in text and "s/veh" in text
    page.wait_for_selector("#junction-kpis .js-plotly-plot", timeout=10_000)
    tab.shot("network-junction")
    assert tab.errors == []


@pytest.mark.browser
def test_a_whatif_run_completes_and_shows_its_result(server: str, tab: _Page) -> None:
    page = tab.open(server + "/whatif")
    page.locator("#wi-minutes").click()
    page.locator(".dash-dropdown-option, [role=option]").filter(has_text="5 min").first.click()
    page.locator("#wi-routing").click()
    page.locator(".dash-dropdown-option, [role=option]").filter(
        has_text="forecast-aware guidance"
    ).first.click()
    page.click("#wi-run")
    page.wait_for_selector("#whatif-result-title", timeout=150_000)
    table = page.inner_text("#wi-table")
    assert "delay per vehicle" in table and "baseline" in table
    # The what-if ran with guidance for the connected vehicles (the slider's default 30 %).
    result = page.inner_text("#wi-result")
    assert "forecast-aware guidance for 30 % of vehicles" in result
    # The run's id: the page's default controller, the shipped policy (the zone's best), had guidance.
    assert "rl-guidance30__" in result
    page.wait_for_selector("#wi-result .js-plotly-plot", timeout=10_000)
    tab.shot("whatif-result")
    assert tab.errors == []
