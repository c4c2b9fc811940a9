"""``roadtwin datasets``: export runs as driving datasets, and generate many of them."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Export runs as synthetic driving datasets.")


def _register() -> None:
    # Each command lives beside the code it drives; those modules import their heavy libraries lazily.
    from roadtwin.datasets.export import export_command
    from roadtwin.datasets.factory import generate_command
    from roadtwin.datasets.motion import samples_command
    from roadtwin.datasets.openscenario import openscenario_command

    app.command("export")(export_command)
    app.command("samples")(samples_command)
    app.command("openscenario")(openscenario_command)
    app.command("generate")(generate_command)


_register()
