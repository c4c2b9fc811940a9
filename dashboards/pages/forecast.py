"""Forecast page: actual against predicted flow and speed per location, and the next hour's outlook."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dash import Input, Output, dcc, html

from roadtwin.dashboards.data import (
    FORECAST_COLUMNS,
    FORECAST_TABLE,
    METHOD_LABELS,
    STATE_COLUMNS,
    STATE_TABLE,
    ZONE_TIMEZONE,
    mtime_ns,
)
from roadtwin.dashboards.pages._common import empty_state, labelled, network_figure, page

if TYPE_CHECKING:
    import dash

    from roadtwin.dashboards.data import WorkspaceData

__all__ = ["PATH", "TITLE", "layout", "outlook", "register", "series_figures"]

PATH = "/forecast"
TITLE = "Forecast"
_INTRO = (
    "The twin's estimated state (actual) against its forecasts 15, 30 and 60 minutes ahead, for any "
    "location, and a congestion outlook of the zone for the next hour."
)
HORIZONS = (15, 30, 60)


def _schema_hint() -> str:
    def cols(spec: dict[str, str]) -> str:
        return ", ".join(f"{c} {t}" for c, t in spec.items())

    return f"{FORECAST_TABLE}({cols(FORECAST_COLUMNS)})\n{STATE_TABLE}({cols(STATE_COLUMNS)})"


def _locations(data: WorkspaceData, forecasts: Any) -> list[dict[str, str]]:
    """Dropdown options: the forecast edges, busiest first, with their street names."""
    names: dict[str, str] = {}
    net = data.default_network()
    if net is not None:
        view = data.network(net)
        names = {str(i): str(n or "") for i, n in zip(view.edges["id"], view.edges["name"], strict=True)}
    busy = forecasts.groupby(forecasts["edge"].astype(str))["flow_veh_h"].mean().sort_values(ascending=False)
    return [{"label": f"{e} · {names[e]}" if names.get(e) else e, "value": e} for e in busy.index]


def layout(data: WorkspaceData) -> html.Div:
    """The page, or an empty state naming the store tables it reads."""
    forecasts, _state, method = data.twin_forecasts()
    if forecasts is None or forecasts.empty:
        _, _, note = data.store_tables()
        return page(
            TITLE,
            _INTRO,
            empty_state(
                "No forecasts yet",
                (note + " " if note else "")
                + "Forecasts appear here once the twin has ingested sensor feeds "
                "and written its forecasts to the workspace store (roadtwin demo does), in these tables:",
                hint=_schema_hint(),
            ),
        )
    locations = _locations(data, forecasts)
    issued = forecasts["issued"]
    flow, speed = series_figures(data, edge=locations[0]["value"], horizon=HORIZONS[0])
    return page(
        TITLE,
        _INTRO,
        html.P(
            [
                "Forecaster: ",
                html.Strong(METHOD_LABELS.get(method, method), id="fc-method"),
                f" · issued {issued.nunique()} times, {issued.min():%H:%M}-{issued.max():%H:%M} "
                f"({ZONE_TIMEZONE}) on {issued.min():%Y-%m-%d} · actual = the twin's estimated state",
            ],
            className="note",
        ),
        labelled(
            "Location (edge, busiest first)",
            dcc.Dropdown(id="fc-edge", options=locations, value=locations[0]["value"], clearable=False),
        ),
        labelled(
            "Horizon",
            dcc.RadioItems(
                id="fc-horizon",
                options=[{"label": f" {h} min", "value": h} for h in HORIZONS],
                value=HORIZONS[0],
                inline=True,
            ),
        ),
        # The first location's series are drawn here, not by a callback on load: a round trip sooner.
        html.Div(
            [dcc.Graph(id="fc-flow", figure=flow), dcc.Graph(id="fc-speed", figure=speed)], className="row2"
        ),
        html.H3(f"Congestion outlook: the next hour from {issued.max():%H:%M}"),
        html.Div(outlook(data), id="fc-outlook"),
    )


def register(app: dash.Dash, data: WorkspaceData) -> None:
    """Register the page's callbacks on ``app``."""

    @app.callback(
        Output("fc-flow", "figure"),
        Output("fc-speed", "figure"),
        Input("fc-edge", "value"),
        Input("fc-horizon", "value"),
        prevent_initial_call=True,  # the layout holds the first location's series
    )
    def _series(edge: str | None, horizon: int | None) -> tuple[Any, Any]:
        return series_figures(data, edge=edge, horizon=horizon)


def series_figures(data: WorkspaceData, *, edge: str | None, horizon: int | None) -> tuple[Any, Any]:
    """Actual against predicted flow and speed at ``edge``, ``horizon`` minutes ahead."""
    import plotly.graph_objects as go

    forecasts, state, method = data.twin_forecasts()
    figs = []
    for col, label in (("flow_veh_h", "flow (veh/h)"), ("speed_kmh", "speed (km/h)")):
        fig = go.Figure()
        if state is not None and not state.empty:
            s = state[state["edge"].astype(str) == str(edge)].sort_values("at")
            fig.add_trace(
                go.Scatter(
                    x=s["at"].dt.tz_localize(None),
                    y=s[col],
                    name="actual (estimated state)",
                    mode="lines",
                )
            )
        if forecasts is not None:
            f = forecasts[
                (forecasts["edge"].astype(str) == str(edge)) & (forecasts["horizon_min"] == horizon)
            ]
            f = f.sort_values("at")
            fig.add_trace(
                go.Scatter(
                    x=f["at"].dt.tz_localize(None),
                    y=f[col],
                    name=f"predicted {horizon} min ahead ({METHOD_LABELS.get(method, method)})",
                    mode="lines",
                    line={"dash": "dash"},
                )
            )
        fig.update_layout(
            title=f"{label}, end of each 5-minute interval",
            height=300,
            margin={"l": 50, "r": 10, "t": 40, "b": 30},
            legend={"orientation": "h", "y": -0.2},
            xaxis={"tickformat": "%H:%M"},
        )
        figs.append(fig)
    return figs[0], figs[1]


def outlook(data: WorkspaceData) -> Any:
    """The congestion outlook map at each horizon from the newest forecasts.

    Cached until the store or the network changes: the page shows it on load with the series.
    """
    net = data.default_network()
    return _outlook(data, net, mtime_ns(data.root / "roadtwin.duckdb"), mtime_ns(net) if net else -1)


@functools.lru_cache(maxsize=4)
def _outlook(data: WorkspaceData, net: Path | None, *_stamps: int) -> Any:
    forecasts, _, _ = data.twin_forecasts()
    if forecasts is None or forecasts.empty or net is None:
        return empty_state(
            "No outlook", "The outlook needs forecasts and the zone's network in the workspace."
        )
    view = data.network(net)
    latest = forecasts[forecasts["issued_at"] == forecasts["issued_at"].max()]
    limit = dict(zip(view.edges["id"], view.edges["speed"] * 3.6, strict=True))
    children = []
    for h in HORIZONS:
        part = latest[latest["horizon_min"] == h]
        ratio = {
            str(e): float(v) / limit[str(e)]
            for e, v in zip(part["edge"], part["speed_kmh"], strict=True)
            if str(e) in limit and limit[str(e)] > 0
        }
        at = part["at"].min() if len(part) else None
        title = f"+{h} min" + (f" ({at:%H:%M})" if at is not None else "")
        fig = network_figure(view, ratio=ratio, title=title, show_signals=False)
        fig.update_layout(height=360, showlegend=h == 60)
        children.append(html.Div(dcc.Graph(figure=fig, config={"displayModeBar": False}), className="third"))
    return html.Div(children, className="row3")
