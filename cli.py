"""The ``roadtwin`` command line: one Typer app with a sub-command group per area.

User mistakes (:class:`~roadtwin.errors.RoadTwinError`) print one line and exit non-zero (2 for bad
input); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys

import typer

from roadtwin.errors import RoadTwinError

__all__ = ["app", "main"]

app = typer.Typer(
    name="roadtwin",
    help="RoadTwin: traffic digital twin and signal optimizer for the Yizhuang demonstration zone.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from roadtwin.agents.commands import app as agents_app
    from roadtwin.dashboards.commands import dash_command
    from roadtwin.datasets.commands import app as datasets_app
    from roadtwin.demo import demo
    from roadtwin.maps.commands import app as maps_app
    from roadtwin.sim.commands import app as sim_app
    from roadtwin.twin.commands import app as twin_app

    app.command("demo")(demo)
    app.command("dash")(dash_command)
    app.add_typer(maps_app, name="maps", help="Build, import and export road networks.")
    app.add_typer(sim_app, name="sim", help="Run scenarios in SUMO.")
    app.add_typer(agents_app, name="agents", help="Signal controllers: evaluate and train them.")
    app.add_typer(twin_app, name="twin", help="Sensor feeds, the store and validated ingestion.")
    app.add_typer(datasets_app, name="datasets", help="Export runs as synthetic driving datasets.")


_register()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (also the console-script entry point)."""
    # SIGTERM unwinds like Ctrl-C, so every run closes SUMO and marks its folder on the way out.
    with contextlib.suppress(ValueError):  # not in the main thread (e.g. inside a test runner thread)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        # Non-standalone Typer returns exit codes (130 for Ctrl-C) instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except RoadTwinError as exc:
        typer.echo(f"roadtwin: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("roadtwin: interrupted", err=True)
        return 130
    except SystemExit as exc:  # typer/click exits for --help and usage errors
        return int(exc.code or 0)
    except typer.Abort:
        typer.echo("roadtwin: interrupted", err=True)
        return 130
    except Exception as exc:
        # Usage errors (unknown command, bad option value): click's, vendored or not, have these two.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        raise
    if code == 130:
        typer.echo("roadtwin: interrupted", err=True)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
