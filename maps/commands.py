"""The ``roadtwin maps`` commands: build or import a network, and export it.

Every option can also come from ``--config FILE.yaml`` (same field names, e.g. ``osm: city.osm``,
``sidewalks: false``, ``format: opendrive``); an option given on the command line wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from roadtwin.config import StrictModel, load_options
from roadtwin.errors import ConfigError
from roadtwin.maps._paths import base_name
from roadtwin.workspace import Workspace

__all__ = ["BuildOptions", "ExportOptions", "app"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Build, import and export road networks.",
)


class BuildOptions(StrictModel):
    """Options of ``roadtwin maps build``."""

    zone: str | None = None
    osm: Path | None = None
    net: Path | None = None
    out: Path | None = None
    workspace: Path | None = None
    sidewalks: bool = True


class ExportOptions(StrictModel):
    """Options of ``roadtwin maps export``."""

    net: Path | None = None
    format: Literal["geoparquet", "opendrive"] = "geoparquet"
    out: Path | None = None
    workspace: Path | None = None


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML file whose fields are this command's options.", metavar="FILE.yaml"),
]
WorkspaceOption = Annotated[
    Path | None,
    typer.Option(help="Workspace folder (default ./roadtwin-data).", metavar="DIR"),
]


@app.command()
def build(
    zone: Annotated[
        str | None,
        typer.Option(help="Built-in zone or zone folder (default: yizhuang).", metavar="NAME"),
    ] = None,
    osm: Annotated[
        Path | None, typer.Option(help="Import an OpenStreetMap XML extract instead.", metavar="FILE")
    ] = None,
    net: Annotated[
        Path | None, typer.Option(help="Import an existing SUMO network instead.", metavar="FILE")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output .net.xml or folder (default: WORKSPACE/networks/NAME/).", metavar="PATH"),
    ] = None,
    workspace: WorkspaceOption = None,
    sidewalks: Annotated[
        bool | None,
        typer.Option("--sidewalks/--no-sidewalks", help="Add sidewalks and crossings (default: on)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Build the zone's SUMO network with netconvert, or import an OSM extract or a SUMO network.

    The built-in zone (Yizhuang, UTM zone 50N, signals at its signalized junctions) is the default.
    """
    from roadtwin.maps.build import build_network
    from roadtwin.maps.zone import load_zone

    opts = load_options(
        BuildOptions, config=config, zone=zone, osm=osm, net=net, out=out, workspace=workspace,
        sidewalks=sidewalks,
    )  # fmt: skip
    sources = [name for name in ("zone", "osm", "net") if getattr(opts, name) is not None]
    if len(sources) > 1:
        raise ConfigError(
            path=config or "command line",
            field="/".join(sources),
            expected="only one source: --zone, --osm or --net",
        )
    if opts.osm is not None:
        name = base_name(opts.osm)
    elif opts.net is not None:
        name = base_name(opts.net)
    else:
        name = load_zone(opts.zone or "yizhuang").name
    target = opts.out or Workspace.at(opts.workspace).networks / name
    path = build_network(
        out=target,
        zone=(opts.zone or "yizhuang") if not (opts.osm or opts.net) else None,
        osm=opts.osm,
        net=opts.net,
        sidewalks=opts.sidewalks,
    )
    _report("Built" if opts.net is None else "Imported", path)


@app.command()
def export(
    net: Annotated[
        Path | None,
        typer.Option(help="SUMO network (default: the workspace's yizhuang, built once).", metavar="FILE"),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="geoparquet (default) or opendrive.", metavar="FORMAT"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: WORKSPACE/exports/NAME/).", metavar="DIR"),
    ] = None,
    workspace: WorkspaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Export a network as GeoParquet layers (EPSG:4326) or as an OpenDRIVE file."""
    from roadtwin.maps.build import network_for
    from roadtwin.maps.export import export_network

    opts = load_options(ExportOptions, config=config, net=net, format=fmt, out=out, workspace=workspace)
    ws = Workspace.at(opts.workspace)
    net_file = opts.net if opts.net is not None else network_for(workspace=ws)
    target = opts.out or ws.root / "exports" / base_name(net_file)
    written = export_network(net_file, fmt=opts.format, out=target)
    from rich.console import Console

    console = Console()
    console.print(f"[bold green]Exported[/] {net_file} as {opts.format}:", soft_wrap=True)
    for path in written:
        console.print(f"  {path}", soft_wrap=True, highlight=False)


def _report(verb: str, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from roadtwin.maps.network import summarize_network

    s = summarize_network(path)
    table = Table(show_header=True, header_style="bold", box=None)
    for column in ("junctions", "signals", "edges", "lanes", "sidewalks", "km"):
        table.add_column(column, justify="right")
    table.add_row(*(str(v) for v in (s.junctions, s.signals, s.edges, s.lanes, s.sidewalks, s.km)))
    console = Console()
    console.print(f"[bold green]{verb}[/] {path}", soft_wrap=True)
    console.print(table)
