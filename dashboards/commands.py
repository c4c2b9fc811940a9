"""``roadtwin dash``: serve the dashboard over a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field

from roadtwin.config import StrictModel, load_options

__all__ = ["DashOptions", "dash_command"]


class DashOptions(StrictModel):
    """Options of ``roadtwin dash`` (also the fields of its ``--config`` YAML)."""

    workspace: Path = Path("roadtwin-data")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8050


def dash_command(
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1, this machine only).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8050).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
) -> None:
    """Serve the RoadTwin dashboard (network, forecast, signals, training, datasets, what-if)."""
    from roadtwin.dashboards.app import serve

    opts = load_options(DashOptions, config=config, workspace=workspace, host=host, port=port)
    serve(workspace=opts.workspace, host=opts.host, port=opts.port)
