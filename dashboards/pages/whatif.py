"""What-if page: run a short simulation with other choices in the background and compare it with the baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import Input, Output, State, dcc, html, no_update

from roadtwin.agents.rl import BEST_ZONE_CONTROLLER
from roadtwin.dashboards.pages._common import empty_state, labelled, page, table
from roadtwin.dashboards.whatif import (
    ROUTING_CHOICES,
    WEATHER_CHOICES,
    WhatIfRequest,
    available_controllers,
    cancel_job,
    default_controller,
    job_status,
    start_job,
)

if TYPE_CHECKING:
    import dash

    from roadtwin.dashboards.data import WorkspaceData

__all__ = ["PATH", "TITLE", "layout", "register"]

PATH = "/whatif"
TITLE = "What-if"
_INTRO = (
    "Choose a signal controller, the weather, an incident, the share of automated vehicles and route "
    "guidance for connected vehicles; a short "
    "window of the morning peak runs in the background and is compared with the baseline (fixed-time "
    "signals, clear weather, no incident, no guidance)."
)
#: How the controller dropdown names a controller (others by their spec): the zone's best is the
#: trained policy shipped for it.
_CONTROLLER_LABELS = {BEST_ZONE_CONTROLLER: f"{BEST_ZONE_CONTROLLER} (best)"}
#: The windows a what-if run may simulate (minutes from 07:45).
_WINDOWS_MIN = (5, 15, 30)
_SHOWN = (
    ("exact_delay_s", "delay per vehicle (s)"),
    ("mean_trip_time_s", "mean trip time (s)"),
    ("mean_wait_s", "mean wait (s)"),
    ("mean_stops", "stops per vehicle"),
    ("throughput_veh_h", "throughput (veh/h)"),
    ("vehicles_finished", "vehicles finished"),
    ("vehicles_still_running", "still running at the end"),
    ("vehicles_never_inserted", "never inserted"),
)


def _incident_options(data: WorkspaceData) -> list[dict[str, str]]:
    options = [{"label": "none", "value": ""}]
    net = data.default_network()
    if net is None:
        return options
    edges = data.network(net).edges
    edges = edges[(edges["lanes"] >= 3) & (edges["name"].astype(str) != "")]
    for e in edges.sort_values(["lanes", "length"], ascending=False).head(8).itertuples():
        options.append({"label": f"a lane blocked on {e.name} ({e.id})", "value": str(e.id)})
    return options


def _choice(dropdown_id: str, options: Any, *, value: Any) -> dcc.Dropdown:
    """A dropdown that always holds a choice."""
    return dcc.Dropdown(id=dropdown_id, options=options, value=value, clearable=False)


def _share_slider(
    slider_id: str,
    *,
    low: float = 0.0,
    high: float = 1.0,
    step: float,
    value: float,
    marks: tuple[float, ...],
) -> dcc.Slider:
    """A slider over a share of vehicles, marked in percent."""
    return dcc.Slider(
        id=slider_id,
        min=low,
        max=high,
        step=step,
        value=value,
        marks={m: f"{round(100 * m)} %" for m in marks},
    )


def layout(data: WorkspaceData) -> html.Div:
    """The form, progress bar and result area."""
    return page(
        TITLE,
        _INTRO,
        html.Div(
            [
                labelled(
                    "Controller",
                    _choice(
                        "wi-controller",
                        [
                            {"label": _CONTROLLER_LABELS.get(c, c), "value": c}
                            for c in available_controllers()
                        ],
                        value=default_controller(),
                    ),
                    class_name="field",
                ),
                labelled(
                    "Weather",
                    _choice("wi-weather", list(WEATHER_CHOICES), value="clear"),
                    class_name="field",
                ),
                labelled(
                    "Incident",
                    _choice("wi-incident", _incident_options(data), value=""),
                    class_name="field wide",
                ),
                labelled(
                    "AV share",
                    _share_slider("wi-av", high=0.9, step=0.05, value=0.1, marks=(0.0, 0.3, 0.6, 0.9)),
                    class_name="field wide",
                ),
                labelled(
                    "Route guidance",
                    _choice(
                        "wi-routing",
                        [{"label": _ROUTING_LABELS[r], "value": r} for r in ROUTING_CHOICES],
                        value="none",
                    ),
                    class_name="field",
                ),
                labelled(
                    "Connected vehicles",
                    _share_slider("wi-penetration", low=0.1, step=0.1, value=0.3, marks=(0.1, 0.3, 0.6, 1.0)),
                    class_name="field wide",
                ),
                labelled(
                    "Window (from 07:45)",
                    _choice(
                        "wi-minutes", [{"label": f"{m} min", "value": m} for m in _WINDOWS_MIN], value=15
                    ),
                    class_name="field",
                ),
            ],
            className="form",
        ),
        html.Div(
            [
                html.Button("Run what-if", id="wi-run", n_clicks=0, className="primary"),
                html.Button("Cancel", id="wi-cancel", n_clicks=0, disabled=True),
            ],
            className="buttons",
        ),
        html.Div(html.Div(id="wi-bar", className="bar-fill", style={"width": "0%"}), className="bar"),
        html.Div(id="wi-message", className="muted", **{"data-testid": "whatif-message"}),
        dcc.Store(id="wi-job"),
        dcc.Interval(id="wi-poll", interval=700, disabled=True),
        html.Div(id="wi-result", **{"data-testid": "whatif-result"}),
    )


def register(app: dash.Dash, data: WorkspaceData) -> None:
    """Register the page's callbacks on ``app``."""

    @app.callback(
        Output("wi-job", "data"),
        Output("wi-poll", "disabled"),
        Output("wi-run", "disabled"),
        Output("wi-cancel", "disabled"),
        Output("wi-message", "children"),
        Input("wi-run", "n_clicks"),
        State("wi-controller", "value"),
        State("wi-weather", "value"),
        State("wi-incident", "value"),
        State("wi-av", "value"),
        State("wi-minutes", "value"),
        State("wi-routing", "value"),
        State("wi-penetration", "value"),
        prevent_initial_call=True,
    )
    def _start(
        n: int,
        controller: str,
        weather: str,
        incident: str,
        av: float,
        minutes: int,
        routing: str = "none",
        penetration: float = 0.3,
    ) -> tuple[Any, ...]:
        valid_incidents = {o["value"] for o in _incident_options(data)}
        if (
            controller not in available_controllers()
            or weather not in WEATHER_CHOICES
            or incident not in valid_incidents
            or minutes not in _WINDOWS_MIN
            or routing not in ROUTING_CHOICES
            or not 0.0 < float(penetration or 0.0) <= 1.0
        ):
            return no_update, True, False, True, "Invalid choice."
        request = WhatIfRequest(
            controller=controller,
            weather=weather,
            incident_edge=incident or "",
            av_share=float(av or 0.0),
            minutes=int(minutes),
            routing=routing,
            penetration=round(float(penetration), 2),
        )
        job = start_job(workspace=data.root, request=request)
        return job, False, True, False, "Starting the simulation..."

    @app.callback(
        Output("wi-bar", "style"),
        Output("wi-message", "children", allow_duplicate=True),
        Output("wi-result", "children"),
        Output("wi-poll", "disabled", allow_duplicate=True),
        Output("wi-run", "disabled", allow_duplicate=True),
        Output("wi-cancel", "disabled", allow_duplicate=True),
        Input("wi-poll", "n_intervals"),
        State("wi-job", "data"),
        prevent_initial_call=True,
    )
    def _poll(_n: int, job: str | None) -> tuple[Any, ...]:
        if not job:
            return no_update, no_update, no_update, True, False, True
        status = job_status(workspace=data.root, job_id=job)
        width = {"width": f"{100 * float(status.get('fraction', 0.0)):.0f}%"}
        state = status.get("state")
        if state in ("starting", "running"):
            return width, status.get("message", ""), no_update, False, True, False
        if state == "done":
            return width, "Done.", _result(status.get("result", {})), True, False, True
        return width, f"{str(state).capitalize()}: {status.get('message', '')}", no_update, True, False, True

    @app.callback(
        Output("wi-message", "children", allow_duplicate=True),
        Output("wi-poll", "disabled", allow_duplicate=True),
        Output("wi-run", "disabled", allow_duplicate=True),
        Output("wi-cancel", "disabled", allow_duplicate=True),
        Input("wi-cancel", "n_clicks"),
        State("wi-job", "data"),
        prevent_initial_call=True,
    )
    def _cancel(_n: int, job: str | None) -> tuple[Any, ...]:
        if job:
            cancel_job(workspace=data.root, job_id=job)
        return "Cancelled.", True, False, True


def _result(result: dict[str, Any]) -> Any:
    import pandas as pd
    import plotly.graph_objects as go

    whatif, baseline = result.get("what-if", {}), result.get("baseline", {})
    if not whatif:
        return empty_state("No result", "The job finished without a result.")
    a, b = whatif.get("metrics", {}), baseline.get("metrics", {})
    rows = []
    for key, label in _SHOWN:
        x, y = a.get(key), b.get(key)
        diff = (x - y) if isinstance(x, int | float) and isinstance(y, int | float) else None
        rows.append({"metric": label, "what-if": x, "baseline": y, "difference": diff})
    frame = pd.DataFrame(rows)
    req = result.get("request", {})
    fig = go.Figure()
    keys = [k for k, _ in _SHOWN[:4]]
    fig.add_trace(go.Bar(x=[dict(_SHOWN)[k] for k in keys], y=[b.get(k) for k in keys], name="baseline"))
    fig.add_trace(go.Bar(x=[dict(_SHOWN)[k] for k in keys], y=[a.get(k) for k in keys], name="what-if"))
    fig.update_layout(barmode="group", height=300, margin={"l": 50, "r": 10, "t": 30, "b": 40})
    return html.Div(
        [
            html.H3("What-if against baseline", id="whatif-result-title"),
            html.P(
                f"{req.get('controller')} · {req.get('weather')} · AV {100 * float(req.get('av_share', 0)):.0f} % · "
                f"incident: {req.get('incident_edge') or 'none'} · {_guidance(req)} · "
                f"{req.get('minutes')} min from {req.get('begin')}; "
                f"runs {whatif.get('run_id')} and {baseline.get('run_id', '–')}",
                className="muted",
            ),
            table(frame, table_id="wi-table"),
            dcc.Graph(figure=fig, config={"displayModeBar": False}),
        ]
    )


_ROUTING_LABELS = {
    "none": "none (fixed routes)",
    "rerouting": "SUMO rerouting device",
    "guidance": "forecast-aware guidance",
}


def _guidance(req: dict[str, Any]) -> str:
    routing = req.get("routing") or "none"
    if routing == "none":
        return "no route guidance"
    return f"{_ROUTING_LABELS.get(routing, routing)} for {100 * float(req.get('penetration', 0)):.0f} % of vehicles"
