"""The Dash app over one workspace: a navigation bar and a simple router over the pages."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dash

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "create_app", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050


def _pages() -> list[Any]:
    from roadtwin.dashboards.pages import PAGES

    return [importlib.import_module(f"roadtwin.dashboards.pages.{name}") for name in PAGES]


def create_app(*, workspace: Path) -> dash.Dash:
    """Build the dashboard over ``workspace`` (which may be missing or empty).

    Parameters
    ----------
    workspace
        The workspace folder; the app only reads inside it (and writes what-if jobs to ``whatif/``).
    """
    from roadtwin.errors import require

    dash = require("dash", extra="dash")
    from dash import Input, Output, dcc, html

    from roadtwin.dashboards.data import WorkspaceData
    from roadtwin.dashboards.pages._common import empty_state, page

    data = WorkspaceData(root=Path(workspace))
    pages = _pages()
    app = dash.Dash(
        __name__,
        title="RoadTwin",
        assets_folder=str(Path(__file__).parent / "assets"),
        suppress_callback_exceptions=True,
        update_title=None,
        # Load plotly.js with the other scripts, not after the first callback: the map shows ~1 s sooner.
        eager_loading=True,
    )
    nav = html.Nav(
        [html.Span("RoadTwin", className="brand")]
        + [
            dcc.Link(p.TITLE, href=p.PATH, className="nav-link", id=f"nav-{p.__name__.rsplit('.', 1)[1]}")
            for p in pages
        ]
        + [html.Span(str(data.root.name), className="workspace", title="workspace")],
        className="nav",
    )
    app.layout = html.Div([dcc.Location(id="url"), nav, html.Main(id="content")])
    routes = {p.PATH: p for p in pages}

    @app.callback(Output("content", "children"), Input("url", "pathname"))
    def _route(pathname: str | None) -> Any:
        module = routes.get(pathname or "/")
        if module is None:
            return page("Not found", "", empty_state("No such page", f"There is no page at {pathname}."))
        if not data.exists:
            return page(
                module.TITLE,
                "",
                empty_state(
                    "No workspace here",
                    f"The workspace folder {data.root.name!r} does not exist yet. Run the demo to fill one, "
                    "or start the dashboard with --workspace pointing at an existing workspace.",
                    hint="roadtwin demo --no-serve\nroadtwin dash --workspace roadtwin-data",
                ),
            )
        try:
            return module.layout(data)
        except Exception as exc:  # a half-written or foreign file must not take the page down
            return page(
                module.TITLE,
                "",
                empty_state("This page could not read the workspace", f"{type(exc).__name__}: {exc}"),
            )

    for module in pages:
        module.register(app, data)
    return app


def serve(*, workspace: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the dashboard over ``workspace`` until interrupted (127.0.0.1 unless told otherwise)."""
    app = create_app(workspace=workspace)
    print(
        f"RoadTwin dashboard on http://{host}:{port}/ (workspace {Path(workspace).resolve()}); Ctrl-C stops it"
    )
    app.run(host=host, port=port, debug=False)
