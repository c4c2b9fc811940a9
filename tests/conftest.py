"""Shared pytest fixtures, grouped by area."""

from __future__ import annotations

from pathlib import Path

import pytest

# --- maps fixtures -------------------------------------------------------------------------------------

SHARED_YIZHUANG_NET = Path(__file__).resolve().parents[1].parent / "shared/data/yizhuang/new_yizhuang.net.xml"

TINY_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="roadtwin-tests">
  <node id="1" lat="39.7950" lon="116.5100" version="1"><tag k="highway" v="traffic_signals"/></node>
  <node id="2" lat="39.7950" lon="116.5065" version="1"/>
  <node id="3" lat="39.7950" lon="116.5135" version="1"/>
  <node id="4" lat="39.7977" lon="116.5100" version="1"/>
  <node id="5" lat="39.7923" lon="116.5100" version="1"/>
  <way id="10" version="1"><nd ref="2"/><nd ref="1"/><nd ref="3"/>
    <tag k="highway" v="primary"/><tag k="name" v="测试东街"/><tag k="lanes" v="4"/><tag k="maxspeed" v="60"/>
  </way>
  <way id="11" version="1"><nd ref="4"/><nd ref="1"/><nd ref="5"/>
    <tag k="highway" v="secondary"/><tag k="name" v="测试北路"/>
  </way>
  <way id="12" version="1"><nd ref="4"/><nd ref="2"/><tag k="highway" v="footway"/></way>
</osm>
"""


@pytest.fixture(scope="session")
def zone_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in Yizhuang zone built once per session (read-only for tests)."""
    from roadtwin.maps import build_network

    return build_network(out=tmp_path_factory.mktemp("zone") / "yizhuang.net.xml", zone="yizhuang")


@pytest.fixture()
def shared_yizhuang_net() -> Path:
    """The third-party 177-signal Yizhuang network, when the shared data folder is present."""
    if not SHARED_YIZHUANG_NET.is_file():
        pytest.skip(f"{SHARED_YIZHUANG_NET.name} is not present")
    return SHARED_YIZHUANG_NET


@pytest.fixture()
def tiny_osm(tmp_path: Path) -> Path:
    """A hand-written OSM extract: two named roads crossing at a signalized node."""
    path = tmp_path / "tiny.osm"
    path.write_text(TINY_OSM, encoding="utf-8")
    return path


@pytest.fixture()
def plain_net(tmp_path: Path) -> Path:
    """A 3x3 grid from netgenerate: a valid SUMO network with no geo-projection."""
    from roadtwin.toolchain import binary, run_tool

    out = tmp_path / "grid.net.xml"
    run_tool([binary("netgenerate"), "--grid", "--grid.number", "3", "-o", out], what="netgenerate")
    return out


# --- end of maps fixtures ------------------------------------------------------------------------------


# --- sim scenario fixtures -----------------------------------------------------------------------------

# A 2 x 2 grid of signalised junctions (ids 1-4, 300 m apart) with a fringe node at the end of every
# arm (5-12): two lanes a direction at 50 km/h, sidewalks and crossings, lon/lat nodes projected to UTM.
GRID_LON, GRID_LAT, GRID_DLON, GRID_DLAT = 116.50, 39.79, 0.0035, 0.0027


def _write_grid_plain(folder: Path) -> tuple[Path, Path]:
    nodes: dict[tuple[int, int], tuple[str, bool]] = {}
    for i in range(2):
        for j in range(2):
            nodes[(i, j)] = (str(len(nodes) + 1), True)
    for k in range(2):
        for ij in ((k, -1), (k, 2), (-1, k), (2, k)):
            nodes[ij] = (str(len(nodes) + 1), False)
    edges = []
    for (i, j), (a, tls_a) in nodes.items():
        for di, dj in ((1, 0), (0, 1)):
            other = nodes.get((i + di, j + dj))
            if other and (tls_a or other[1]):
                edges += [(a, other[0]), (other[0], a)]
    nod = folder / "grid.nod.xml"
    nod.write_text(
        "<nodes>\n"
        + "".join(
            f'  <node id="{nid}" x="{GRID_LON + i * GRID_DLON:.6f}" y="{GRID_LAT + j * GRID_DLAT:.6f}" '
            f'type="{"traffic_light" if tls else "priority"}"/>\n'
            for (i, j), (nid, tls) in nodes.items()
        )
        + "</nodes>\n",
        encoding="utf-8",
    )
    edg = folder / "grid.edg.xml"
    edg.write_text(
        "<edges>\n"
        + "".join(
            f'  <edge id="{a}_{b}" from="{a}" to="{b}" numLanes="2" speed="13.89" priority="2"/>\n'
            for a, b in edges
        )
        + "</edges>\n",
        encoding="utf-8",
    )
    return nod, edg


@pytest.fixture(scope="session")
def small_grid_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2x2 signalised grid with sidewalks and crossings (edge ids ``{from}_{to}``, like the zone)."""
    from roadtwin.toolchain import binary, run_tool

    folder = tmp_path_factory.mktemp("small_grid")
    nod, edg = _write_grid_plain(folder)
    out = folder / "grid.net.xml"
    run_tool(
        [
            binary("netconvert"), "-n", nod, "-e", edg, "--proj.utm", "--sidewalks.guess", "--crossings.guess",
            "--no-turnarounds", "--tls.default-type", "static", "-o", out,
        ],
        what="netconvert (small grid)",
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def small_corridor_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 900 m two-lane arterial 3-1-2-4 with two signalised mid-block crossings at nodes 1 and 2."""
    from roadtwin.toolchain import binary, run_tool

    folder = tmp_path_factory.mktemp("small_corridor")
    xs = {"3": -1, "1": 0, "2": 1, "4": 2}
    nod = folder / "corridor.nod.xml"
    nod.write_text(
        "<nodes>\n"
        + "".join(
            f'  <node id="{nid}" x="{GRID_LON + k * GRID_DLON:.6f}" y="{GRID_LAT:.6f}" '
            f'type="{"traffic_light" if nid in ("1", "2") else "priority"}"/>\n'
            for nid, k in xs.items()
        )
        + "</nodes>\n",
        encoding="utf-8",
    )
    edg = folder / "corridor.edg.xml"
    edg.write_text(
        "<edges>\n"
        + "".join(
            f'  <edge id="{a}_{b}" from="{a}" to="{b}" numLanes="2" speed="13.89"/>\n'
            for u, v in (("3", "1"), ("1", "2"), ("2", "4"))
            for a, b in ((u, v), (v, u))
        )
        + "</edges>\n",
        encoding="utf-8",
    )
    out = folder / "corridor.net.xml"
    run_tool(
        [
            binary("netconvert"), "-n", nod, "-e", edg, "--proj.utm", "--sidewalks.guess", "--crossings.guess",
            "--no-turnarounds", "--tls.default-type", "static", "-o", out,
        ],
        what="netconvert (small corridor)",
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def run_sumo():
    """Return ``run(inputs, out_dir, *, drain=900) -> list[dict]``: SUMO's tripinfo records of a run.

    The run goes ``drain`` seconds past the scenario's end so that every vehicle finishes and a mean
    time loss compares like with like; teleporting is off.
    """
    from xml.etree import ElementTree as ET

    from roadtwin.toolchain import binary, run_tool

    def run(inputs, out_dir: Path, *, drain: float = 900.0) -> list[dict[str, str]]:
        out_dir.mkdir(parents=True, exist_ok=True)
        tripinfo = out_dir / "tripinfo.xml"
        run_tool(
            [
                binary("sumo"), "-n", inputs.net_file,
                "-r", ",".join(str(p) for p in inputs.route_files),
                "-a", ",".join(str(p) for p in inputs.additional_files),
                "-b", f"{inputs.begin:g}", "-e", f"{inputs.end + drain:g}", "--seed", str(inputs.seed),
                *inputs.extra_args,
                "--time-to-teleport", "-1", "--no-step-log", "--no-warnings",
                "--tripinfo-output", tripinfo, "--tripinfo-output.write-unfinished",
            ],
            what="sumo",
        )  # fmt: skip
        return [dict(el.attrib) for el in ET.parse(tripinfo).getroot() if el.tag == "tripinfo"]

    return run


def mean_time_loss(trips: list[dict[str, str]]) -> float:
    """Mean of timeLoss + departDelay over tripinfo records (finished or not)."""
    return sum(float(t["timeLoss"]) + float(t["departDelay"]) for t in trips) / len(trips)


@pytest.fixture(scope="session")
def time_loss():
    """Return :func:`mean_time_loss` (fixtures are how test modules share helpers here)."""
    return mean_time_loss


@pytest.fixture()
def grid_scenario(small_grid_net: Path):
    """Return ``make(**fields) -> Scenario``: a busy 10-minute scenario on :func:`small_grid_net`.

    ``fields`` replace top-level fields; nested dicts (``demand``, ``vehicle_mix``...) replace whole.
    """
    from roadtwin.sim.scenario import Scenario

    def make(**fields: object) -> Scenario:
        data: dict[str, object] = {
            "name": "grid",
            "network": str(small_grid_net),
            "begin": "07:00",
            "end": "07:10",
            "seed": 1,
            "demand": {"veh_per_hour": 2000, "min_distance": 300, "interval": 300},
            "vehicle_mix": {"car": 1.0, "bus": 0.0, "truck": 0.0, "av": 0.0},
        }
        data.update(fields)
        return Scenario.model_validate(data)

    return make


# --- end of sim scenario fixtures ----------------------------------------------------------------------


# --- signal-control fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def signal_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 3x3 grid of signals with sidewalks and crossings, and 10 minutes of dense random trips."""
    from roadtwin import toolchain

    folder = tmp_path_factory.mktemp("signal-grid")
    net, trips = folder / "grid.net.xml", folder / "trips.xml"
    toolchain.run_tool(
        [
            toolchain.binary("netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "120",
            "--default.lanenumber", "1", "-j", "traffic_light",
            "--sidewalks.guess", "true", "--crossings.guess", "true", "-o", net,
        ],
        what="netgenerate",
    )  # fmt: skip
    toolchain.run_tool(
        [
            toolchain.tool("randomTrips.py"), "-n", net, "-o", trips, "-e", "600", "-p", "0.5",
            "--seed", "1", "--fringe-factor", "10", "--min-distance", "200",
        ],
        what="randomTrips",
        cwd=folder,  # randomTrips drops a routes file into its working directory
    )  # fmt: skip
    return net, trips


# --- end of signal-control fixtures --------------------------------------------------------------------


# --- datasets fixtures ---------------------------------------------------------------------------------

#: The recorded window of :func:`recorded_run`: five minutes of the built-in morning peak.
DATASET_WINDOW = ("07:30", "07:35")


@pytest.fixture(scope="session")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of 07:30-07:35 of ``yizhuang_morning_peak`` recorded with ``fcd`` and ``signals``.

    About 64,000 FCD rows: cars, buses, trucks, automated vehicles (``av``) and pedestrians. Read-only.
    """
    import yaml

    from roadtwin.sim.run import run_scenario
    from roadtwin.sim.scenario import Scenario, builtin_scenario
    from roadtwin.workspace import Workspace

    data = yaml.safe_load(builtin_scenario().read_text(encoding="utf-8"))
    data.update(begin=DATASET_WINDOW[0], end=DATASET_WINDOW[1])
    ws = Workspace.at(tmp_path_factory.mktemp("datasets-ws"))
    result = run_scenario(
        Scenario.model_validate(data), workspace=ws, progress=False, report=False, record=("fcd", "signals")
    )
    return result.run_dir


@pytest.fixture(scope="session")
def exported_dataset(recorded_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset folder ``roadtwin datasets export`` writes for :func:`recorded_run` (read-only)."""
    from roadtwin.datasets.export import export_run

    return export_run(
        recorded_run, out=tmp_path_factory.mktemp("datasets-export") / "dataset", progress=False
    )


# --- end of datasets fixtures --------------------------------------------------------------------------


# --- signal fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ingolstadt21():  # -> roadtwin.sim.signals.SignalNetwork
    """RESCO's ingolstadt21 signals as read from SUMO (skips without the sumo-rl wheel's networks)."""
    from roadtwin import toolchain
    from roadtwin.sim.backend import start
    from roadtwin.sim.resco import resco_files
    from roadtwin.sim.signals import read_signal_network

    try:
        net, _, _, _ = resco_files("ingolstadt21")
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.skip("sumo-rl's RESCO networks are not installed")
    cmd = [toolchain.binary("sumo"), "-n", str(net), "--no-step-log", "true", "--no-warnings", "true"]
    session = start(cmd)
    try:
        return read_signal_network(session.conn)
    finally:
        session.close()


# --- benchmark fixtures --------------------------------------------------------------------------------


@pytest.fixture()
def load_benchmark():  # -> Callable[[str], ModuleType]
    """Load a script of ``benchmarks/`` (not a package) as a module: ``load_benchmark("resco")``."""
    import importlib.util

    def load(name: str):
        script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"bench_{name}", script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
