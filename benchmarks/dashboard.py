"""Dashboard latency on the full 177-signal Yizhuang network: page loads and callback round trips.

Imports ``new_yizhuang.net.xml`` into a workspace (as ``roadtwin maps build --net`` does), simulates a
short window on it so the Network page has edge data, adds a tiny evaluation, training run, dataset and
twin store so every page has content, serves the dashboard on a free 127.0.0.1 port and drives it with
Playwright on the system Chromium (never a downloaded browser).

- **page load**: navigation start -> the page's main graph or table drawn (a selector that proves the
  content rendered), in a fresh browser context each time (empty HTTP cache: plotly.js is fetched and
  compiled again); the first load of each page is the cold one; "cached load" is a repeat visit in one
  context;
- **callback latency**: the ``_dash-update-component`` POST round trips a user action triggers (the time
  slider and a signal click on the Network page, a junction choice on the Signals page), from the
  browser's request timing, beside the server's own time in the callback.

Goal: load <= 1.5 s, callbacks <= 200 ms.

    python benchmarks/dashboard.py [--net PATH] [--workspace DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_NET = Path(__file__).resolve().parents[1].parent / "shared/data/yizhuang/new_yizhuang.net.xml"
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
LOAD_GOAL_S = 1.5
CALLBACK_GOAL_MS = 200.0
SCENARIO = "bench_dash"

#: Page path and the selectors that prove its main content rendered (all must be visible).
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "network": ("/", ("#net-map .scatterlayer .trace:last-child path.point",)),
    "forecast": ("/forecast", ("#fc-flow .scatterlayer .trace path", "#fc-speed .scatterlayer .trace path")),
    "signals": ("/signals", ("#sg-table", "#sg-plots .barlayer .trace", "#sg-timeline .barlayer .trace")),
    "training": ("/training", ("#tr-curves .scatterlayer .trace path",)),
    "datasets": ("/datasets", ("#datasets-table",)),
    "whatif": ("/whatif", ("#wi-run", "#wi-incident")),
}


# --- the workspace ----------------------------------------------------------------------------------------


def prepare_workspace(root: Path, net: Path, *, minutes: int, veh_per_hour: int) -> str:
    """Import ``net``, run a short scenario on it and add the extras; return the run id (reused if there)."""
    from roadtwin.maps.build import build_network
    from roadtwin.sim.run import run_scenario
    from roadtwin.sim.scenario import Scenario
    from roadtwin.workspace import Workspace

    ws = Workspace.at(root)
    name = net.name.removesuffix(".gz").removesuffix(".net.xml")
    target = ws.networks / name / f"{name}.net.xml"
    runs = sorted((root / "runs").glob(f"{SCENARIO}__*"))
    done = [r for r in runs if (r / "metrics.json").is_file() and (r / "edgedata.xml").is_file()]
    if target.is_file() and done:
        print(f"reusing workspace {root} (run {done[-1].name})", flush=True)
        return done[-1].name
    t0 = time.perf_counter()
    build_network(out=target, net=net)
    print(f"imported {net.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    begin_min = 7 * 60 + 30
    scenario = Scenario.model_validate(
        {
            "name": SCENARIO,
            "network": str(target),
            "begin": f"{begin_min // 60:02d}:{begin_min % 60:02d}",
            "end": f"{(begin_min + minutes) // 60:02d}:{(begin_min + minutes) % 60:02d}",
            "seed": 1,
            "demand": {"veh_per_hour": veh_per_hour},
        }
    )
    t0 = time.perf_counter()
    result = run_scenario(scenario, workspace=ws, progress=False, report=False)
    print(
        f"simulated {minutes} min at {veh_per_hour} veh/h in {time.perf_counter() - t0:.1f} s "
        f"({result.run_dir.name})",
        flush=True,
    )
    _fill_extras(root, result.run_dir.name, target)
    return result.run_dir.name


def _fill_extras(root: Path, run_id: str, net: Path) -> None:
    """A two-controller evaluation over the run, a training run with events, a dataset and a twin store."""
    import duckdb
    import pandas as pd

    from roadtwin.dashboards.data import FORECAST_COLUMNS, FORECAST_TABLE, STATE_COLUMNS, STATE_TABLE
    from roadtwin.maps.network import network_frames

    evaluation = root / "evaluations" / f"{SCENARIO}__20260101-000000"
    evaluation.mkdir(parents=True, exist_ok=True)
    rows = [
        {"scenario": SCENARIO, "controller": controller, "seed": seed, "exact_delay_s": delay + seed,
         "trip_time_s": 280.0, "queue": 2.0 + seed, "throughput_veh_h": 1600.0,
         "run_dir": str(root / "runs" / run_id), "wall_time_s": 7.0}
        for controller, delay in (("fixed", 110.0), ("max-pressure", 80.0)) for seed in (0, 1)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(evaluation / "results.csv", index=False)

    training = root / "runs" / f"{SCENARIO}__ppo__0__20260101-000000"
    (training / "tb" / "ppo_1").mkdir(parents=True, exist_ok=True)
    (training / "config.yaml").write_text("train: {algo: ppo, timesteps: 4096}\nenv: {}\npolicy: {}\n")
    (training / "train.json").write_text(json.dumps({"timesteps": 4096, "wall_time_s": 120.0}))
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(training / "tb" / "ppo_1"))
    for step in range(0, 4096, 64):
        for tag, value in (("rollout/ep_rew_mean", -100 + step / 64), ("train/loss", 1.0 / (1 + step))):
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary))
    writer.close()

    dataset = root / "datasets" / f"{SCENARIO}-morning"
    dataset.mkdir(parents=True, exist_ok=True)
    manifest = {"schema_version": "1.0", "scenario": {"name": SCENARIO}, "files": ["trajectories.parquet"]}
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    (dataset / "trajectories.parquet").write_bytes(b"PAR1")

    edges = network_frames(net).edges["id"].astype(str).head(50).tolist()
    # 07:30-08:30 local (UTC+8) in 5-minute intervals, the same window as the run.
    times = pd.date_range("2026-01-01 23:30", periods=12, freq="5min", tz="UTC")
    state = pd.DataFrame(
        [{"edge": e, "interval_start": t, "resolution_s": 300, "speed_kmh": 40.0 - i,
          "flow_veh_h": 400.0 + i * 10, "density_veh_km": 10.0 + i, "confidence": 1.0}
         for e in edges for i, t in enumerate(times)]
    )  # fmt: skip
    step = pd.Timedelta(minutes=5)
    forecasts = pd.DataFrame(
        [{"edge": e, "issued_at": t, "horizon_min": h, "target_at": t + pd.Timedelta(minutes=h),
          "resolution_s": 300, "flow_veh_h": 420.0 + i * 10, "speed_kmh": 38.0 - i, "method": "persistence"}
         for e in edges for h in (15, 30, 60) for i, t in enumerate(times + step)]
    )  # fmt: skip
    store = root / "roadtwin.duckdb"
    store.unlink(missing_ok=True)
    con = duckdb.connect(str(store))
    for table, columns, frame in (
        (FORECAST_TABLE, FORECAST_COLUMNS, forecasts),
        (STATE_TABLE, STATE_COLUMNS, state),
    ):
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
        con.register("frame", frame)
        con.execute(f"INSERT INTO {table} SELECT {', '.join(columns)} FROM frame")
        con.unregister("frame")
    con.close()


# --- the server -------------------------------------------------------------------------------------------


class ServerTimes:
    """Server-side time of every ``_dash-update-component`` request, by its output."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def add(self, output: str, ms: float) -> None:
        with self._lock:
            self.records.append((output, ms))

    def since(self, n: int) -> list[tuple[str, float]]:
        with self._lock:
            return self.records[n:]


@contextmanager
def serve(root: Path, times: ServerTimes) -> Iterator[str]:
    """Serve the dashboard over ``root`` on a free 127.0.0.1 port in a thread, timing callbacks."""
    import logging

    import flask
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from roadtwin.dashboards.app import create_app, warm

    t0 = time.perf_counter()
    app = create_app(workspace=root)
    t1 = time.perf_counter()
    warm(app)  # as `roadtwin dash` does before it listens
    print(
        f"create_app in {1000 * (t1 - t0):.0f} ms, warm-up in {1000 * (time.perf_counter() - t1):.0f} ms",
        flush=True,
    )
    server_app = app.server

    @server_app.before_request
    def _start() -> None:
        flask.g.bench_t0 = time.perf_counter()

    @server_app.after_request
    def _stop(response: Any) -> Any:
        if flask.request.path.endswith("_dash-update-component"):
            body = flask.request.get_json(silent=True) or {}
            times.add(str(body.get("output", "?")), 1000 * (time.perf_counter() - flask.g.bench_t0))
        return response

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = make_server("127.0.0.1", port, server_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


# --- the browser ------------------------------------------------------------------------------------------


class Tab:
    """A fresh browser context and page that records Dash callback round trips and console errors."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.callbacks: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.page.on("requestfinished", self._finished)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _finished(self, request: Any) -> None:
        if "_dash-update-component" not in request.url:
            return
        try:
            output = str((request.post_data_json or {}).get("output", "?"))
        except ValueError:
            output = "?"
        self.callbacks.append((output, float(request.timing["responseEnd"])))

    def close(self) -> None:
        self.context.close()


def load(browser: Any, url: str, selectors: tuple[str, ...], tab: Tab | None = None) -> tuple[float, Tab]:
    """Open ``url`` in a fresh tab (or ``tab``); seconds from navigation start until every selector is visible."""
    tab = tab or Tab(browser)
    t0 = time.perf_counter()
    tab.page.goto(url, wait_until="commit")
    for selector in selectors:
        tab.page.wait_for_selector(selector, state="visible", timeout=60_000)
    return time.perf_counter() - t0, tab


def settle(tab: Tab, *, quiet_ms: int = 400, timeout_s: float = 30.0) -> None:
    """Wait until no new Dash callback has finished for ``quiet_ms``."""
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        n = len(tab.callbacks)
        if n == seen:
            return
        seen = n
        tab.page.wait_for_timeout(quiet_ms)


def action(
    tab: Tab, times: ServerTimes, do: Callable[[], None], done: str | None = None
) -> tuple[list[tuple[str, float]], list[tuple[str, float]], float]:
    """Run a user action; return its client and server callback times and the action's end-to-end time."""
    n_client, n_server = len(tab.callbacks), len(times.records)
    t0 = time.perf_counter()
    do()
    if done:
        tab.page.wait_for_selector(done, state="visible", timeout=30_000)
    end_to_end = time.perf_counter() - t0
    settle(tab)
    return tab.callbacks[n_client:], times.since(n_server), end_to_end


def _slider_step(tab: Tab) -> None:
    handle = tab.page.locator("#net-time [role=slider]").first
    handle.focus()
    handle.press("ArrowRight")


def _signal_click(tab: Tab, k: int) -> Callable[[], None]:
    def do() -> None:
        point = tab.page.locator("#net-map .scatterlayer .trace:last-child path.point").nth(k)
        box = point.bounding_box()
        if box is None:
            raise RuntimeError("signal marker not drawn")
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        tab.page.mouse.move(x, y)
        tab.page.wait_for_timeout(200)  # let Plotly's hover settle: its click targets the hovered point
        tab.page.mouse.click(x, y)

    return do


def _choose_junction(tab: Tab, k: int) -> Callable[[], None]:
    def do() -> None:
        tab.page.locator("#sg-signal").click()
        tab.page.locator(f'.dash-dropdown-option[data-option-index="{k}"]').click()

    return do


def _choose_horizon(tab: Tab, minutes: int) -> None:
    tab.page.locator("#fc-horizon label").filter(has_text=f"{minutes} min").click()


# --- the benchmark ----------------------------------------------------------------------------------------


def _stats(values: list[float]) -> tuple[float, float]:
    return (statistics.median(values), max(values)) if values else (float("nan"), float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--net", type=Path, default=DEFAULT_NET, help="the SUMO network (.net.xml)")
    parser.add_argument("--workspace", type=Path, default=None, help="workspace (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=5, help="warm loads and actions per page")
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated pages to measure")
    parser.add_argument("--minutes", type=int, default=20, help="simulated window for the run")
    parser.add_argument("--veh-per-hour", type=int, default=3000, help="demand of the run")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.pages.split(",")) - set(PAGES))
    if unknown:
        parser.error(f"unknown pages {', '.join(unknown)} (choose from {', '.join(PAGES)})")
    if not args.net.is_file():
        print(f"dashboard benchmark: network not found: {args.net} (pass --net PATH)", file=sys.stderr)
        return 2
    if not CHROMIUM.is_file():
        print(
            f"dashboard benchmark: no Chromium at {CHROMIUM} (apt-get install -y chromium)", file=sys.stderr
        )
        return 2

    with tempfile.TemporaryDirectory(prefix="dash-bench-") as tmp:
        root = (args.workspace or Path(tmp) / "ws").resolve()
        prepare_workspace(root, args.net, minutes=args.minutes, veh_per_hour=args.veh_per_hour)
        rows = run_browser(root, repeat=args.repeat, pages=args.pages.split(","))
    print()
    print(
        "| page | cold load (s) | median load (s) | max load (s) | cached load (s) | callback "
        "| client median/max (ms) "
        "| server median/max (ms) | goal | met |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    all_met = True
    for row in rows:
        print("| " + " | ".join(row[:-1]) + " |")
        all_met &= row[-1]
    return 0 if all_met else 1


def run_browser(root: Path, *, repeat: int, pages: list[str]) -> list[list[Any]]:
    """Measure every page and action; return the table's rows (the last item of a row: goal met)."""
    from playwright.sync_api import sync_playwright

    times = ServerTimes()
    rows: list[list[Any]] = []
    with serve(root, times) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for name in pages:
                path, selectors = PAGES[name]
                loads, initial_client, initial_server = [], [], []
                actions: dict[str, tuple[list[float], list[float], list[float]]] = {}
                errors: list[str] = []
                for i in range(repeat + 1):
                    n_server = len(times.records)
                    seconds, tab = load(browser, base + path, selectors)
                    try:
                        settle(tab)
                        loads.append(seconds)
                        if i:
                            initial_client += [ms for _, ms in tab.callbacks]
                            initial_server += [ms for _, ms in times.since(n_server)]
                        errors += tab.errors
                        for label, do, done in _actions(name, tab, i):
                            client, server, _ = action(tab, times, do, done)
                            c, s, _e = actions.setdefault(label, ([], [], []))
                            if i:  # the first (cold) pass warms the caches; it is not counted
                                c += [ms for _, ms in client]
                                s += [ms for _, ms in server]
                    finally:
                        tab.close()
                # Repeat visits in one browser context: scripts (plotly.js) come from the HTTP cache.
                cached: list[float] = []
                _, tab = load(browser, base + path, selectors)
                try:
                    for _ in range(repeat):
                        settle(tab)
                        cached.append(load(browser, base + path, selectors, tab)[0])
                finally:
                    tab.close()
                cold, warm = loads[0], loads[1:]
                med, mx = _stats(warm)
                load_met = max(loads) <= LOAD_GOAL_S
                cm, cx = _stats(initial_client)
                sm, sx = _stats(initial_server)
                rows.append(
                    [name, f"{cold:.2f}", f"{med:.2f}", f"{mx:.2f}", f"{statistics.median(cached):.2f}",
                     "initial callbacks (on load)",
                     f"{cm:.0f} / {cx:.0f}", f"{sm:.0f} / {sx:.0f}",
                     f"load <= {LOAD_GOAL_S} s", "met" if load_met else "**not met**", load_met]
                )  # fmt: skip
                for label, (c, s, _e) in actions.items():
                    cm, cx = _stats(c)
                    sm, sx = _stats(s)
                    met = bool(c) and cx <= CALLBACK_GOAL_MS
                    rows.append(
                        ["", "", "", "", "", label, f"{cm:.0f} / {cx:.0f}", f"{sm:.0f} / {sx:.0f}",
                         f"callback <= {CALLBACK_GOAL_MS:.0f} ms", "met" if met else "**not met**", met]
                    )  # fmt: skip
                print(f"{name}: cold {cold:.2f} s, warm median {med:.2f} s", flush=True)
                if errors:
                    print(f"  console errors on {name}: {errors[:3]}", flush=True)
        finally:
            browser.close()
    return rows


def _actions(name: str, tab: Tab, i: int) -> list[tuple[str, Callable[[], None], str | None]]:
    """The user actions measured on page ``name`` (pass ``i`` varies the chosen signal)."""
    if name == "network":
        return [
            ("time slider step (map redraw)", lambda: _slider_step(tab), None),
            ("signal click (select, map, KPIs)", _signal_click(tab, 10 + 7 * i), "#junction-title"),
        ]
    if name == "forecast":
        minutes = (30, 60)[i % 2]
        return [("horizon choice (flow and speed series)", lambda: _choose_horizon(tab, minutes), None)]
    if name == "signals":
        return [("junction choice (phase timeline)", _choose_junction(tab, 1 + i % 3), None)]
    return []


if __name__ == "__main__":
    sys.exit(main())
