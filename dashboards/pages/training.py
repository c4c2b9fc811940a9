"""Training page: learning curves of training runs from their TensorBoard logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import Input, Output, dcc, html

from roadtwin.dashboards.data import PathOutsideWorkspace
from roadtwin.dashboards.pages._common import empty_state, kpi, labelled, page

if TYPE_CHECKING:
    import dash

    from roadtwin.dashboards.data import WorkspaceData

__all__ = ["PATH", "TITLE", "layout", "register"]

PATH = "/training"
TITLE = "Training"
_INTRO = "Learning curves of reinforcement-learning training runs, read from their TensorBoard logs (tb/)."
#: Tags shown first when present.
_FIRST = ("rollout/ep_rew_mean", "eval/mean_reward", "train/loss", "train/value_loss", "train/entropy_loss")


def layout(data: WorkspaceData) -> html.Div:
    """The page, or an empty state before the first training run."""
    runs = data.runs(kind="training")
    if runs.empty:
        return page(
            TITLE,
            _INTRO,
            empty_state(
                "No training runs yet",
                "Training runs (run folders with a train section in config.yaml and TensorBoard logs in tb/) "
                "appear here with their learning curves.",
                hint="roadtwin agents train --algo ppo --timesteps 20000",
            ),
        )
    options = [
        {"label": f"{r.scenario} · {r.controller} · seed {r.seed} ({r.id})", "value": r.id}
        for r in runs.itertuples()
    ]
    return page(
        TITLE,
        _INTRO,
        labelled(
            "Training run",
            dcc.Dropdown(id="tr-run", options=options, value=options[0]["value"], clearable=False),
        ),
        html.Div(id="tr-info", className="kpis"),
        html.Div(id="tr-curves"),
    )


def register(app: dash.Dash, data: WorkspaceData) -> None:
    """Register the page's callbacks on ``app``."""

    @app.callback(Output("tr-info", "children"), Output("tr-curves", "children"), Input("tr-run", "value"))
    def _curves(run_id: str | None) -> tuple[Any, Any]:
        import plotly.graph_objects as go

        if not run_id:
            return [], []
        try:
            curves = data.learning_curves(run_id)
            info = data.training_info(run_id)
        except PathOutsideWorkspace:
            return [], empty_state("Not in this workspace", "That run lies outside the workspace.")
        cards = [kpi(k.replace("_", " "), v) for k, v in info.items() if isinstance(v, int | float | str)][:6]
        if curves.empty:
            return cards, empty_state(
                "No learning curves yet", "This run has no scalar TensorBoard events yet (tb/)."
            )
        tags = sorted(
            curves["tag"].unique(), key=lambda t: (_FIRST.index(t) if t in _FIRST else len(_FIRST), t)
        )
        graphs = []
        for tag in tags[:8]:
            part = curves[curves["tag"] == tag]
            fig = go.Figure(
                go.Scatter(
                    x=part["step"],
                    y=part["value"],
                    mode="lines+markers" if len(part) < 50 else "lines",
                    name=tag,
                )
            )
            fig.update_layout(
                title=tag, height=260, margin={"l": 50, "r": 10, "t": 40, "b": 30}, xaxis={"title": "step"}
            )
            graphs.append(html.Div(dcc.Graph(figure=fig, config={"displayModeBar": False}), className="half"))
        return cards, html.Div(graphs, className="grid2", **{"data-testid": "learning-curves"})
