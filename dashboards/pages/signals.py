"""Signals page: controllers compared per scenario, per-junction delay and queue, a phase timeline."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from dash import Input, Output, dcc, html

from roadtwin.dashboards.data import PathOutsideWorkspace, mtime_ns
from roadtwin.dashboards.pages._common import empty_state, labelled, page, table

if TYPE_CHECKING:
    import dash
    import pandas as pd
    import plotly.graph_objects as go

    from roadtwin.dashboards.data import WorkspaceData

__all__ = ["PATH", "TITLE", "evaluation_view", "layout", "register", "timeline_figure"]

PATH = "/signals"
TITLE = "Signals"
_INTRO = (
    "Signal controllers compared on one scenario (from an evaluation's results), the delay and queue at "
    "each junction under each controller, and the phase timeline of one junction."
)
_METRICS = (
    ("exact_delay_s", "delay per vehicle (s)"),
    ("queue", "queue (veh per signal)"),
    ("trip_time_s", "trip time (s)"),
    ("throughput_veh_h", "throughput (veh/h)"),
)


def layout(data: WorkspaceData) -> html.Div:
    """The page, with empty states for what is missing."""
    evaluations = data.evaluations()
    net = data.default_network()
    parts: list[Any] = []
    if evaluations:
        # The first view is built here, not by callbacks on load: the page shows a round trip sooner.
        summary, plots, junctions = evaluation_view(data, evaluation=evaluations[0])
        parts += [
            labelled(
                "Evaluation",
                dcc.Dropdown(id="sg-eval", options=evaluations, value=evaluations[0], clearable=False),
            ),
            html.Div(summary, id="sg-summary"),
            html.Div(plots, id="sg-plots", className="grid2"),
            html.H3("Per junction"),
            html.Div(junctions, id="sg-junctions"),
        ]
    else:
        parts.append(
            empty_state(
                "No evaluations yet",
                "Evaluate controllers on a scenario (several seeds each) to compare them here: the table and "
                "plots come from the evaluation's results.csv.",
                hint="roadtwin agents eval --scenario zone -c fixed -c webster -c actuated -c max-pressure "
                "--seeds 2",
            )
        )
    if net is not None:
        signals = data.network(net).signals
        options = [{"label": f"{s.id}: {s.name}", "value": s.id} for s in signals.itertuples()]
        first = options[0]["value"] if options else None
        parts += [
            html.H3("Phase timeline"),
            labelled("Junction", dcc.Dropdown(id="sg-signal", options=options, value=first)),
            dcc.Graph(
                id="sg-timeline", figure=timeline_figure(data, signal=first), config={"displayModeBar": False}
            ),
        ]
    return page(TITLE, _INTRO, *parts)


#: SUMO's signal state characters: what they mean and their colour on the phase timeline.
_STATES: dict[str, tuple[str, str]] = {
    "G": ("green (priority)", "#16a34a"),
    "g": ("green (yield)", "#4ade80"),
    "y": ("yellow", "#f59e0b"),
    "r": ("red", "#dc2626"),
    "u": ("red-yellow", "#f97316"),
    "o": ("off (blinking)", "#9ca3af"),
    "O": ("off", "#9ca3af"),
    "s": ("stop, then go", "#2563eb"),
}


def _bars(results: pd.DataFrame, col: str, label: str) -> Any:
    import plotly.graph_objects as go

    g = results.groupby("controller")[col]
    mean, std = g.mean(), g.std().fillna(0.0)
    fig = go.Figure(
        go.Bar(
            x=mean.index.tolist(),
            y=mean.values,
            error_y={"type": "data", "array": std.values},
            marker={"color": "#2563eb"},
        )
    )
    seeds = results.groupby("controller").size()
    fig.update_layout(
        title=f"{label} (mean ± sd over {int(seeds.max())} seeds)",
        height=280,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
    )
    return html.Div(dcc.Graph(figure=fig, config={"displayModeBar": False}), className="half")


def register(app: dash.Dash, data: WorkspaceData) -> None:
    """Register the page's callbacks on ``app``."""

    @app.callback(
        Output("sg-summary", "children"),
        Output("sg-plots", "children"),
        Output("sg-junctions", "children"),
        Input("sg-eval", "value"),
        prevent_initial_call=True,  # the layout holds the newest evaluation's view
    )
    def _evaluation(evaluation: str | None) -> tuple[Any, Any, Any]:
        return evaluation_view(data, evaluation=evaluation)

    @app.callback(
        Output("sg-timeline", "figure"),
        Input("sg-signal", "value"),
        prevent_initial_call=True,  # the layout holds the first junction's timeline
    )
    def _timeline(signal: str | None) -> Any:
        return timeline_figure(data, signal=signal)


def evaluation_view(data: WorkspaceData, *, evaluation: str | None) -> tuple[Any, Any, Any]:
    """An evaluation's summary table, metric plots and per-junction plots (cached until its results change)."""
    try:
        stamp = mtime_ns(data.entry("evaluations", evaluation, "results.csv")) if evaluation else -1
    except PathOutsideWorkspace:
        stamp = -1
    return _evaluation_view(data, evaluation, stamp)


@functools.lru_cache(maxsize=16)
def _evaluation_view(data: WorkspaceData, evaluation: str | None, _stamp: int) -> tuple[Any, Any, Any]:
    import plotly.graph_objects as go

    try:
        results = data.results(evaluation) if evaluation else None
        summary = data.summary(evaluation) if evaluation else None
    except PathOutsideWorkspace:
        results = summary = None
    if results is None or results.empty or "controller" not in results.columns:
        return empty_state("Empty evaluation", "This evaluation's results.csv has no rows yet."), [], []
    plots = [_bars(results, col, label) for col, label in _METRICS if col in results.columns]
    # Per-junction delay and queue: the first run of each controller that lies in this workspace.
    tables = {}
    if "run_dir" in results.columns:
        for controller, group in results.groupby("controller"):
            for run_dir in group["run_dir"]:
                run_id = data.run_id_of(run_dir)
                if run_id:
                    frame = data.junction_table(run_id)
                    if not frame.empty:
                        tables[controller] = frame
                        break
    if not tables:
        junctions: Any = html.P(
            "The evaluation's runs are not in this workspace (or have no edge data).", className="muted"
        )
    else:
        first = next(iter(tables.values()))
        worst = first.head(15)["signal"].tolist()
        figs = []
        for col, label in (
            ("delay_s", "delay per vehicle on approaches (s)"),
            ("queue_veh", "mean queue on approaches (veh)"),
        ):
            fig = go.Figure()
            for controller, frame in tables.items():
                f = frame.set_index("signal").reindex(worst)
                fig.add_trace(go.Bar(x=[str(s) for s in worst], y=f[col], name=str(controller)))
            fig.update_layout(
                title=f"{label}: the 15 worst junctions",
                barmode="group",
                height=300,
                margin={"l": 50, "r": 10, "t": 40, "b": 40},
                xaxis={"title": "signal", "type": "category"},
            )
            figs.append(html.Div(dcc.Graph(figure=fig, config={"displayModeBar": False}), className="half"))
        junctions = html.Div(figs, className="grid2")
    return table(summary if summary is not None else results, table_id="sg-table"), plots, junctions


def timeline_figure(data: WorkspaceData, *, signal: str | None) -> go.Figure:
    """The programmed plan of ``signal`` (the workspace's default network) over two cycles."""
    import plotly.graph_objects as go

    net = data.default_network()
    fig = go.Figure()
    if net is None or not signal:
        return fig
    signals = data.network(net).signals
    match = signals[signals.id == signal]
    if match.empty:
        return fig
    plan = match.iloc[0].plan or []
    # One bar trace per signal state (not per link and phase): a 16-link, 8-phase plan is 8 traces
    # instead of 256, which Plotly draws in a fraction of the time.
    bars: dict[str, tuple[list[float], list[float], list[str], list[str]]] = {}
    t = 0.0
    for _cycle in range(2):
        for state, seconds in plan:
            for link, ch in enumerate(state):
                x, base, y, hover = bars.setdefault(ch, ([], [], [], []))
                x.append(float(seconds))
                base.append(t)
                y.append(f"link {link}")
                hover.append(f"link {link}: {_STATES.get(ch, (ch, ''))[0]} for {seconds:.0f} s")
            t += float(seconds)
    for ch, (x, base, y, hover) in bars.items():
        name, colour = _STATES.get(ch, (ch, "#9ca3af"))
        fig.add_trace(
            go.Bar(
                x=x,
                base=base,
                y=y,
                orientation="h",
                name=name,
                marker={"color": colour},
                hovertext=hover,
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=f"Signal {signal}: programmed plan, two cycles (green, yellow, red per link)",
        barmode="overlay",
        legend={"orientation": "h", "y": -0.15},
        height=150 + 18 * len(plan[0][0]) if plan else 200,
        margin={"l": 60, "r": 10, "t": 40, "b": 30},
        xaxis={"title": "s into the cycle"},
        yaxis={
            "autorange": "reversed",
            "categoryorder": "array",
            "categoryarray": [f"link {i}" for i in range(len(plan[0][0]) if plan else 0)],
        },
    )
    return fig
