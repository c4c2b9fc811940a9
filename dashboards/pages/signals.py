"""Signals page: controllers compared per scenario, per-junction delay and queue, a phase timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import Input, Output, dcc, html

from roadtwin.dashboards.data import PathOutsideWorkspace
from roadtwin.dashboards.pages._common import empty_state, page, table

if TYPE_CHECKING:
    import dash
    import pandas as pd

    from roadtwin.dashboards.data import WorkspaceData

__all__ = ["PATH", "TITLE", "layout", "register"]

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
        parts += [
            html.Div(
                [
                    html.Label("Evaluation"),
                    dcc.Dropdown(id="sg-eval", options=evaluations, value=evaluations[0], clearable=False),
                ],
                className="control",
            ),
            html.Div(id="sg-summary"),
            html.Div(id="sg-plots", className="grid2"),
            html.H3("Per junction"),
            html.Div(id="sg-junctions"),
        ]
    else:
        parts.append(
            empty_state(
                "No evaluations yet",
                "Evaluate controllers on a scenario (several seeds each) to compare them here: the table and "
                "plots come from the evaluation's results.csv.",
                hint="roadtwin agents evaluate yizhuang_morning_peak --controllers fixed,actuated,webster,max-pressure",
            )
        )
    if net is not None:
        signals = data.network(net).signals
        options = [{"label": f"{s.id}: {s.name}", "value": s.id} for s in signals.itertuples()]
        parts += [
            html.H3("Phase timeline"),
            html.Div(
                [
                    html.Label("Junction"),
                    dcc.Dropdown(
                        id="sg-signal", options=options, value=options[0]["value"] if options else None
                    ),
                ],
                className="control",
            ),
            dcc.Graph(id="sg-timeline", config={"displayModeBar": False}),
        ]
    return page(TITLE, _INTRO, *parts)


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
    )
    def _evaluation(evaluation: str | None) -> tuple[Any, Any, Any]:
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
                figs.append(
                    html.Div(dcc.Graph(figure=fig, config={"displayModeBar": False}), className="half")
                )
            junctions = html.Div(figs, className="grid2")
        return table(summary if summary is not None else results, table_id="sg-table"), plots, junctions

    @app.callback(Output("sg-timeline", "figure"), Input("sg-signal", "value"))
    def _timeline(signal: str | None) -> Any:
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
        colour = {
            "G": "#16a34a",
            "g": "#4ade80",
            "y": "#f59e0b",
            "r": "#dc2626",
            "u": "#f97316",
            "o": "#9ca3af",
            "O": "#9ca3af",
            "s": "#2563eb",
        }
        t = 0.0
        for _cycle in range(2):
            for state, seconds in plan:
                for link, ch in enumerate(state):
                    fig.add_trace(
                        go.Bar(
                            x=[float(seconds)],
                            base=[t],
                            y=[f"link {link}"],
                            orientation="h",
                            marker={"color": colour.get(ch, "#9ca3af")},
                            showlegend=False,
                            hovertext=f"{ch} for {seconds:.0f} s",
                            hoverinfo="text",
                        )
                    )
                t += float(seconds)
        fig.update_layout(
            title=f"Signal {signal}: programmed plan, two cycles (green, yellow, red per link)",
            barmode="overlay",
            height=120 + 18 * len(plan[0][0]) if plan else 200,
            margin={"l": 60, "r": 10, "t": 40, "b": 30},
            xaxis={"title": "s into the cycle"},
            yaxis={"autorange": "reversed"},
        )
        return fig
