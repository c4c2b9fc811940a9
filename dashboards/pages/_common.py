"""Building blocks shared by the pages: empty states, KPI cards, tables and the network map."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dash import dash_table, html

from roadtwin.dashboards.data import CONGESTION_BINS, NO_TRAFFIC, congestion_class

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from roadtwin.dashboards.data import NetworkView

__all__ = ["empty_state", "kpi", "labelled", "network_figure", "page", "table"]


def page(title: str, intro: str, *children: Any) -> html.Div:
    """A page: its heading, one line of what it shows, then its content."""
    return html.Div([html.H2(title), html.P(intro, className="intro"), *children], className="page")


def labelled(label: str, control: Any, *, class_name: str = "control") -> html.Div:
    """A form control under its label; the label names the control (``htmlFor``) when it has an id."""
    control_id = getattr(control, "id", None)
    tag = html.Label(label, htmlFor=control_id) if isinstance(control_id, str) else html.Label(label)
    return html.Div([tag, control], className=class_name)


def empty_state(title: str, message: str, *, hint: str = "", test_id: str = "empty-state") -> html.Div:
    """An explanatory empty state: what is missing and the command that produces it."""
    parts: list[Any] = [html.H3(title), html.P(message)]
    if hint:
        parts.append(html.Pre(hint, className="hint"))
    return html.Div(parts, className="empty-state", **{"data-testid": test_id})


def kpi(label: str, value: float | int | str | None, unit: str = "") -> html.Div:
    """A KPI card."""
    if isinstance(value, bool):
        shown = str(value)
    elif isinstance(value, int):
        shown = f"{value:,}"
    elif isinstance(value, float):
        shown = "–" if math.isnan(value) else f"{value:,.1f}"
    else:
        shown = "–" if value is None else str(value)
    return html.Div(
        [html.Div(label, className="kpi-label"), html.Div(f"{shown} {unit}".strip(), className="kpi-value")],
        className="kpi",
    )


def table(frame: pd.DataFrame, *, table_id: str, page_size: int = 15) -> dash_table.DataTable:
    """A sortable table of a data frame (numbers rounded to 2 decimals)."""
    shown = frame.copy()
    for col in shown.select_dtypes("float").columns:
        shown[col] = shown[col].round(2)
    return dash_table.DataTable(
        id=table_id,
        data=shown.to_dict("records"),
        columns=[{"name": str(c), "id": str(c)} for c in shown.columns],
        sort_action="native",
        page_size=page_size,
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px", "textAlign": "left"},
        style_header={"fontWeight": "600", "backgroundColor": "#f3f4f6"},
    )


def network_figure(
    view: NetworkView,
    *,
    ratio: dict[str, float] | None = None,
    selected: str | None = None,
    title: str = "",
    show_signals: bool = True,
) -> go.Figure:
    """The zone drawn from its own geometry: edges coloured by speed relative to their limit.

    Parameters
    ----------
    view
        The network's layers (lon/lat).
    ratio
        Speed over limit per edge id; ``None`` draws every edge in one neutral colour.
    selected
        A signal id to highlight.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    groups: dict[int, tuple[list[float | None], list[float | None], list[str | None]]] = {}
    for e in view.edges.itertuples():
        cls = congestion_class(ratio.get(e.id, float("nan"))) if ratio is not None else -2
        xs, ys, texts = groups.setdefault(cls, ([], [], []))
        label = f"{e.name or e.id} ({e.id})"
        if ratio is not None and e.id in ratio:
            label += f"<br>speed {100 * ratio[e.id]:.0f} % of limit"
        xs.extend([*e.lon, None])
        ys.extend([*e.lat, None])
        texts.extend([label] * len(e.lon) + [None])
    order = [-2, -1, *range(len(CONGESTION_BINS) - 1, -1, -1)]
    for cls in order:
        if cls not in groups:
            continue
        xs, ys, texts = groups[cls]
        if cls == -2:
            name, colour, width = "road", "#6b7280", 1.5
        elif cls == -1:
            name, colour, width = NO_TRAFFIC[0], NO_TRAFFIC[1], 1.2
        else:
            name, colour, width = CONGESTION_BINS[cls][1], CONGESTION_BINS[cls][2], 2.5
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": colour, "width": width},
                name=name,
                text=texts,
                hoverinfo="text",
                connectgaps=False,
            )
        )
    if show_signals and not view.signals.empty:
        sig = view.signals
        sizes = [16 if s == selected else 9 for s in sig.id]
        colours = ["#2563eb" if s == selected else "#111827" for s in sig.id]
        fig.add_trace(
            go.Scatter(
                x=sig.lon.tolist(),
                y=sig.lat.tolist(),
                mode="markers",
                name="signals (click for KPIs)",
                marker={
                    "size": sizes,
                    "color": colours,
                    "symbol": "circle",
                    "line": {"color": "white", "width": 1},
                },
                customdata=sig.id.tolist(),
                text=[f"signal {i}: {n}" for i, n in zip(sig.id, sig.name, strict=True)],
                hoverinfo="text",
            )
        )
    lat0 = float(view.signals.lat.mean()) if not view.signals.empty else 40.0
    fig.update_layout(
        title=title or None,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        height=620,
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.02},
        uirevision="network",
        clickmode="event",
        hovermode="closest",
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1 / math.cos(math.radians(lat0)))
    return fig
