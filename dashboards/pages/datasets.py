"""Datasets page: exported datasets with their manifests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from dash import html

from roadtwin.dashboards.pages._common import empty_state, page, table

if TYPE_CHECKING:
    import dash

    from roadtwin.dashboards.data import WorkspaceData

__all__ = ["PATH", "TITLE", "layout", "register"]

PATH = "/datasets"
TITLE = "Datasets"
_INTRO = "Synthetic driving datasets exported from runs (trajectories, map, signals, sensor views) and their manifests."


def layout(data: WorkspaceData) -> html.Div:
    """The page, or an empty state before the first export."""
    import pandas as pd

    found = data.datasets()
    if not found:
        return page(
            TITLE,
            _INTRO,
            empty_state(
                "No datasets exported yet",
                "A dataset is a run exported with a manifest (schema version, scenario, files) into the "
                "workspace's datasets/ folder. Export one to list it here.",
                hint="roadtwin datasets export RUN_ID",
            ),
        )
    rows = []
    for d in found:
        m = d["manifest"]
        rows.append(
            {
                "dataset": d["name"],
                "schema": str(m.get("schema_version", m.get("version", ""))),
                "scenario": str(
                    m.get("scenario", {}).get("name", "")
                    if isinstance(m.get("scenario"), dict)
                    else m.get("scenario", "")
                ),
                "files": d["files"],
                "size (MB)": d["size_mb"],
                "manifest": "yes" if m else "missing",
            }
        )
    details = [
        html.Details(
            [
                html.Summary(d["name"]),
                html.Pre(
                    json.dumps(d["manifest"], indent=2, ensure_ascii=False, default=str)
                    if d["manifest"]
                    else "no manifest"
                ),
            ]
        )
        for d in found
    ]
    return page(
        TITLE, _INTRO, table(pd.DataFrame(rows), table_id="datasets-table"), html.H3("Manifests"), *details
    )


def register(app: dash.Dash, data: WorkspaceData) -> None:
    """The page is static: nothing to register."""
