"""The backend factory: libsumo and TraCI run the same simulation, fail clearly and clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from roadtwin import toolchain
from roadtwin.errors import ConfigError, SimulationError
from roadtwin.sim.backend import start


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("grid")
    net, routes = d / "grid.net.xml", d / "routes.rou.xml"
    toolchain.run_tool(
        [
            toolchain.binary("netgenerate"),
            "--grid",
            "--grid.number",
            "3",
            "--grid.length",
            "200",
            "-j",
            "traffic_light",
            "-o",
            net,
        ],
        what="netgenerate",
    )
    toolchain.run_tool(
        [
            toolchain.tool("randomTrips.py"),
            "-n",
            net,
            "-r",
            routes,
            "-o",
            d / "trips.xml",
            "-b",
            "0",
            "-e",
            "300",
            "-p",
            "1",
            "--seed",
            "7",
            "--validate",
        ],
        what="randomTrips",
    )
    return net, routes


def _cmd(net: Path, routes: Path, *, end: int = 400) -> list[str]:
    return [
        toolchain.binary("sumo"),
        "-n",
        str(net),
        "-r",
        str(routes),
        "-e",
        str(end),
        "--no-step-log",
        "--seed",
        "1",
    ]


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_backends_run_the_same_simulation(grid, backend: str) -> None:
    net, routes = grid
    with start(_cmd(net, routes), backend=backend) as session:  # type: ignore[arg-type]
        session.step(200)
        assert session.time == 200
        running = session.conn.vehicle.getIDCount()
        arrived = session.conn.simulation.getArrivedNumber()
    # the reference: the other backend's figures are the same simulation
    with start(_cmd(net, routes), backend="libsumo") as ref:
        ref.step(200)
        assert ref.conn.vehicle.getIDCount() == running
        assert ref.conn.simulation.getArrivedNumber() == arrived
    assert running > 0


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_sumo_error_is_reported_with_sumos_reason(tmp_path: Path, backend: str) -> None:
    bad = tmp_path / "missing.net.xml"
    with pytest.raises(SimulationError, match=r"missing\.net\.xml"):
        start(
            [toolchain.binary("sumo"), "-n", str(bad), "--error-log", str(tmp_path / "err.log")],
            backend=backend,
        )  # type: ignore[arg-type]


def test_unknown_backend_is_a_config_error(grid) -> None:
    with pytest.raises(ConfigError, match="backend"):
        start(_cmd(*grid), backend="carla")  # type: ignore[arg-type]


def test_traci_close_leaves_no_sumo(grid) -> None:
    session = start(_cmd(*grid), backend="traci")
    proc = session.process
    assert proc is not None and proc.poll() is None
    session.step(10)
    session.close()
    assert proc.poll() is not None
    session.close()  # twice is fine


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_kill_9_of_the_parent_leaves_no_sumo(grid, tmp_path: Path) -> None:
    net, routes = grid
    script = tmp_path / "hold.py"
    script.write_text(
        textwrap.dedent(f"""
        import time
        from roadtwin.sim.backend import start
        s = start({_cmd(net, routes, end=100000)!r}, backend="traci")
        s.step(5)
        print("ready", flush=True)
        time.sleep(600)
    """)
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        kids = _children(parent.pid)
        assert kids, "the TraCI backend should run sumo as a child process"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(k) for k in kids), "sumo outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
