"""RoadTwin dashboards: a Dash app that reads a workspace's runs, evaluations, store and datasets.

Importing this package starts nothing and imports neither Dash nor plotly; they load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PathOutsideWorkspace", "WorkspaceData", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        from roadtwin.dashboards import app

        return getattr(app, name)
    if name in ("PathOutsideWorkspace", "WorkspaceData"):
        from roadtwin.dashboards import data

        return getattr(data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
