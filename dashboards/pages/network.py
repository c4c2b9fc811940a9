"""Network page: the zone coloured by congestion at a 5-minute interval, and a signal's KPIs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dash import Input, Output, State, dcc, html, no_update

from roadtwin.dashboards.data import PathOutsideWorkspace, clock
from roadtwin.dashboards.pages._common import empty_state, kpi, labelled, network_figure, page

if TYPE_CHECKING:
    import dash
    import plotly.graph_objects as go

    from roadtwin.dashboards.data import WorkspaceData

__all__ = ["PATH", "TITLE", "layout", "map_figure", "register", "run_controls"]

PATH = "/"
TITLE = "Network"
_INTRO = (
    "The zone drawn from its own network geometry; edges coloured by speed relative to the limit in a "
    "5-minute interval, as the twin estimated it from its sensors (store) or as a run simulated it. "
    "Click a signal (or pick it below) for its delay, queue and phase split in the run."
)
#: Colour sources: the twin's estimated state in the store, or the run's simulated edge data.
SOURCES = {"state": "estimated by the twin (sensors, store)", "run": "simulated (the run's edge data)"}


def layout(data: WorkspaceData) -> html.Div:
    """The page, or an empty state when there is no run and no network."""
    runs = data.run_options()
    if not runs:
        net = data.default_network()
        if net is None:
            return page(
                TITLE,
                _INTRO,
                empty_state(
                    "No simulation runs yet",
                    "This workspace has no complete run with per-edge data and no network. Run a scenario "
                    "to see the zone, its congestion and its signals here.",
                    hint="roadtwin demo --no-serve\nroadtwin sim run yizhuang_morning_peak",
                ),
            )
        view = data.network(net)
        return page(
            TITLE,
            _INTRO,
            empty_state(
                "No simulation runs yet",
                "The network is drawn below without congestion: run a scenario to colour it.",
                hint="roadtwin sim run yizhuang_morning_peak",
            ),
            dcc.Graph(id="net-map", figure=network_figure(view), config={"displaylogo": False}),
        )
    has_state = data.estimated_state() is not None
    sources = [{"label": f" {v}", "value": k} for k, v in SOURCES.items() if has_state or k == "run"]
    # The first view is drawn here, not by callbacks on load: the page shows two round trips sooner.
    run_id, source = runs[0]["value"], "state" if has_state else "run"
    t_min, t_max, marks, t, options = run_controls(data, run_id=run_id, source=source)
    figure = map_figure(data, run_id=run_id, t=t, signal=None, source=source)
    return page(
        TITLE,
        _INTRO,
        labelled("Run", dcc.Dropdown(id="net-run", options=runs, value=runs[0]["value"], clearable=False)),
        labelled("Congestion", dcc.RadioItems(id="net-source", options=sources, value=source, inline=True)),
        labelled(
            "Time of day", dcc.Slider(id="net-time", min=t_min, max=t_max, marks=marks, step=None, value=t)
        ),
        html.Div(
            [
                html.Div(
                    dcc.Graph(
                        id="net-map",
                        figure=figure if figure is not None else {},
                        config={"displaylogo": False},
                    ),
                    className="map-col",
                ),
                html.Div(
                    [
                        html.Label("Signal", htmlFor="net-junction"),
                        dcc.Dropdown(
                            id="net-junction", options=options, placeholder="click a signal on the map"
                        ),
                        html.Div(id="junction-kpis", **{"data-testid": "junction-kpis"}),
                    ],
                    className="side-col",
                ),
            ],
            className="row",
        ),
    )


def register(app: dash.Dash, data: WorkspaceData) -> None:
    """Register the page's callbacks on ``app``."""

    @app.callback(
        Output("net-time", "min"),
        Output("net-time", "max"),
        Output("net-time", "marks"),
        Output("net-time", "value"),
        Output("net-junction", "options"),
        Input("net-run", "value"),
        Input("net-source", "value"),
        prevent_initial_call=True,  # the layout holds the first run's controls
    )
    def _choose_run(run_id: str | None, source: str | None) -> tuple[Any, ...]:
        return run_controls(data, run_id=run_id, source=source)

    @app.callback(
        Output("net-map", "figure"),
        Input("net-run", "value"),
        Input("net-time", "value"),
        Input("net-junction", "value"),
        Input("net-source", "value"),
        prevent_initial_call=True,  # the layout holds the first view
    )
    def _draw(run_id: str | None, t: float | None, signal: str | None, source: str | None) -> Any:
        figure = map_figure(data, run_id=run_id, t=t, signal=signal, source=source) if run_id else None
        return no_update if figure is None else figure

    @app.callback(
        Output("net-junction", "value"),
        Input("net-map", "clickData"),
        State("net-run", "value"),
        prevent_initial_call=True,
    )
    def _click(click: dict[str, Any] | None, run_id: str | None) -> Any:
        points = (click or {}).get("points", [])
        for point in points:
            if point.get("customdata") is not None:
                return point["customdata"]
        # The closest point may be an edge's end at the junction: take the nearest signal within ~80 m.
        try:
            net = data.network_file(run_id) if run_id else None
        except PathOutsideWorkspace:
            net = None
        if net is None or not points or points[0].get("x") is None:
            return no_update
        signals = data.network(net).signals
        x, y = float(points[0]["x"]), float(points[0]["y"])
        dist = ((signals["lon"] - x) * math.cos(math.radians(y))) ** 2 + (signals["lat"] - y) ** 2
        if dist.empty or float(dist.min()) ** 0.5 * 111_000 > 80:
            return no_update
        return signals["id"].iloc[int(dist.to_numpy().argmin())]

    @app.callback(
        Output("junction-kpis", "children"),
        Input("net-run", "value"),
        Input("net-junction", "value"),
        Input("net-time", "value"),
    )
    def _kpis(run_id: str | None, signal: str | None, t: float | None) -> Any:
        if not run_id or not signal:
            return html.P(
                "Click a signal on the map, or choose one above, to see its KPIs.", className="muted"
            )
        return junction_panel(data, run_id=run_id, signal=signal, t=float(t or 0))


def run_controls(
    data: WorkspaceData, *, run_id: str | None, source: str | None
) -> tuple[int, int, dict[int, str], int, list[dict[str, str]]]:
    """The time slider (min, max, marks, value: the middle interval) and signal options for a run."""
    try:
        times = data.intervals(run_id) if run_id else []
        net = data.network_file(run_id) if run_id else None
    except PathOutsideWorkspace:
        times, net = [], None
    state = data.estimated_state() if source == "state" else None
    if state is not None:
        times = sorted(state["tod_s"].unique().tolist())
    if not times:
        return 0, 1, {}, 0, []
    step = max(1, len(times) // 12)
    marks = {int(t): clock(t) for t in times[::step]}
    signals = data.network(net).signals if net is not None else None
    options = (
        []
        if signals is None
        else [{"label": f"{s.id}: {s.name}", "value": s.id} for s in signals.itertuples()]
    )
    # The busiest interval first: that is where congestion shows.
    return int(times[0]), int(times[-1]), marks, int(times[len(times) // 2]), options


def map_figure(
    data: WorkspaceData, *, run_id: str, t: float | None, signal: str | None, source: str | None
) -> go.Figure | None:
    """The network coloured by the twin's estimate (``source="state"``) or the run's edge data at ``t``."""
    try:
        net = data.network_file(run_id)
    except PathOutsideWorkspace:
        return None
    if net is None:
        return None
    view = data.network(net)
    state = data.estimated_state() if source == "state" else None
    if state is not None:
        limit = dict(zip(view.edges["id"].astype(str), view.edges["speed"] * 3.6, strict=True))
        part = state[state["tod_s"] == float(t or 0)]
        ratio = {
            str(e): float(v) / limit[str(e)]
            for e, v in zip(part["edge"], part["speed_kmh"], strict=True)
            if limit.get(str(e), 0) > 0
        }
        what = "estimated speed relative to limit (twin)"
    else:
        edges = data.edgedata(run_id)
        part = edges[edges["begin"] == float(t or 0)]
        ratio = dict(zip(part["edge"], part["speedRelative"], strict=True))
        what = "simulated speed relative to limit (run)"
    title = f"{clock(float(t or 0))} – {clock(float(t or 0) + 300)}: {what}"
    return network_figure(view, ratio=ratio, selected=signal, title=title)


def junction_panel(data: WorkspaceData, *, run_id: str, signal: str, t: float) -> html.Div:
    """KPIs of one signal in one run: delay and queue now and over the run, and its phase split."""
    import plotly.graph_objects as go

    try:
        series = data.junction_series(run_id, signal=signal)
        net = data.network_file(run_id)
    except PathOutsideWorkspace:
        return html.Div("This run lies outside the workspace.", className="muted")
    view = data.network(net) if net is not None else None
    match = view.signals[view.signals.id == signal] if view is not None else None
    if match is None or match.empty:
        return html.Div(f"Signal {signal} is not in this run's network.", className="muted")
    row = match.iloc[0]
    now = series[series["begin"] == t]
    children: list[Any] = [
        html.H3(f"Signal {signal}", id="junction-title"),
        html.P(row["name"], className="muted"),
        html.Div(
            [
                kpi(
                    f"Delay {clock(t)}", float(now["delay_s"].iloc[0]) if len(now) else float("nan"), "s/veh"
                ),
                kpi(
                    f"Queue {clock(t)}", float(now["queue_veh"].iloc[0]) if len(now) else float("nan"), "veh"
                ),
                kpi(
                    "Delay, whole run",
                    float((series["delay_s"] * series["vehicles"]).sum() / max(series["vehicles"].sum(), 1.0))
                    if len(series)
                    else float("nan"),
                    "s/veh",
                ),
                kpi(
                    "Queue, whole run",
                    float(series["queue_veh"].mean()) if len(series) else float("nan"),
                    "veh",
                ),
            ],
            className="kpis",
        ),
    ]
    if len(series):
        fig = go.Figure()
        fig.add_trace(
            go.Bar(x=[clock(b) for b in series["begin"]], y=series["delay_s"], name="delay (s/veh)")
        )
        fig.add_trace(
            go.Scatter(
                x=[clock(b) for b in series["begin"]],
                y=series["queue_veh"],
                name="queue (veh)",
                yaxis="y2",
                mode="lines+markers",
            )
        )
        fig.update_layout(
            height=230,
            margin={"l": 40, "r": 40, "t": 10, "b": 30},
            legend={"orientation": "h", "y": 1.15},
            yaxis={"title": "s/veh"},
            yaxis2={"overlaying": "y", "side": "right", "title": "veh"},
        )
        children.append(dcc.Graph(figure=fig, config={"displayModeBar": False}))
    plan = row["plan"] or []
    cycle = sum(float(p[1]) for p in plan) or 1.0
    greens = [sum(ch in "Gg" for ch in p[0]) for p in plan]
    fig = go.Figure(
        go.Bar(
            x=[float(p[1]) for p in plan],
            y=[f"phase {i}" for i in range(len(plan))],
            orientation="h",
            text=[
                f"{100 * float(p[1]) / cycle:.0f} % · {g} green links"
                for p, g in zip(plan, greens, strict=True)
            ],
            marker={"color": ["#16a34a" if g else "#f59e0b" for g in greens]},
        )
    )
    fig.update_layout(
        height=60 + 24 * len(plan),
        margin={"l": 70, "r": 10, "t": 30, "b": 30},
        title={"text": f"Phase split (programmed cycle {cycle:.0f} s)", "font": {"size": 13}},
        yaxis={"autorange": "reversed"},
        xaxis={"title": "s"},
    )
    children.append(dcc.Graph(figure=fig, config={"displayModeBar": False}))
    children.append(
        html.P(
            "Delay: time loss per vehicle leaving the signal's approaches; queue: mean number "
            "of halting vehicles on them (SUMO edge data).",
            className="note",
        )
    )
    return html.Div(children)
