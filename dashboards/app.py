"""The Dash app over one workspace: a navigation bar and a simple router over the pages."""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dash

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "PLOTLY_BASIC",
    "create_app",
    "plotly_basic_matches",
    "serve",
    "warm",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
ASSETS = Path(__file__).parent / "assets"
#: plotly.js's "basic" partial bundle (scatter, bar, pie; MIT licence beside it), npm plotly.js-basic-dist-min.
PLOTLY_BASIC = ASSETS / "vendor" / "plotly-basic.min.js"


@functools.cache
def plotly_basic_matches() -> bool:
    """Whether the vendored basic bundle is the plotly.js version the installed ``plotly`` writes figures for."""
    from plotly.offline import get_plotlyjs_version

    try:
        with PLOTLY_BASIC.open(encoding="utf-8") as f:
            header = f.read(200)
    except OSError:
        return False
    found = re.search(r"plotly\.js \(basic - minified\) v(\S+)", header)
    return found is not None and found.group(1) == get_plotlyjs_version()


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
    basic = plotly_basic_matches()
    app = dash.Dash(
        __name__,
        title="RoadTwin",
        assets_folder=str(ASSETS),
        # The pages draw only scatter and bar traces: plotly.js's basic bundle (1.2 MB, vendored in
        # assets/vendor/) loads as a plain script and dcc.Graph uses it (window.Plotly) instead of the full
        # 4.8 MB bundle; every other component chunk loads only when a page shows it. A first visit shows
        # its page ~1 s sooner. If the installed plotly ships another plotly.js version, the full bundle
        # is loaded with the other scripts instead (not after the first callback, which costs ~1 s).
        assets_ignore="" if basic else re.escape(PLOTLY_BASIC.name),
        eager_loading=not basic,
        suppress_callback_exceptions=True,
        update_title=None,
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
    app.roadtwin_data = data  # type: ignore[attr-defined]
    return app


def warm(app: dash.Dash) -> None:
    """Fill the workspace caches and render every page once, so that a first visit is as quick as the next.

    What a page cannot read shows on that page when it is visited; warming never raises.
    """
    import contextlib

    import plotly.graph_objects as go

    data = app.roadtwin_data  # type: ignore[attr-defined]
    data.warm()
    go.Figure(go.Scatter(), layout={"title": "warm"}).to_dict()  # plotly's validators load on first use
    for module in _pages():
        with contextlib.suppress(Exception):
            module.layout(data)


def serve(*, workspace: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the dashboard over ``workspace`` until interrupted (127.0.0.1 unless told otherwise)."""
    app = create_app(workspace=workspace)
    warm(app)
    print(
        f"RoadTwin dashboard on http://{host}:{port}/ (workspace {Path(workspace).resolve()}); Ctrl-C stops it"
    )
    app.run(host=host, port=port, debug=False)
