"""Export a recorded run as a driving dataset (the layout and schema of ``datasets/SCHEMA.md``).

:func:`export_run` turns a run recorded with ``roadtwin sim run SCENARIO --record fcd,signals`` into
one folder: trajectories of every agent, signal states per controlled link per step, the map
(GeoParquet and OpenDRIVE), sensor views, weather and scenario metadata, and ``manifest.json``
(written last: an export is complete exactly when it has one).

Every file is written under a temporary name and renamed when whole, then entered in a hidden
``.progress.json`` with its size and checksum. An export that was killed resumes: a new call with the
same ``out`` keeps the files already entered (after checking their checksums) and writes the rest.
The dataset's split is a deterministic function of the scenario seed (:func:`split_for_seed`). The map
files of a run inside a workspace are built once per network (``WORKSPACE/datasets/.map-cache/``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from roadtwin import __version__
from roadtwin._io import atomic_path, read_json, sha256_file, write_json
from roadtwin.config import StrictModel, load_options
from roadtwin.errors import InputError, require

if TYPE_CHECKING:
    import pyarrow as pa

    from roadtwin.datasets._map import NetXml

__all__ = [
    "SCHEMA_VERSION",
    "SPLITS",
    "ExportOptions",
    "export_command",
    "export_run",
    "resolve_run",
    "split_for_seed",
]

#: Version of the layout and schema in ``datasets/SCHEMA.md``; written to every ``manifest.json``.
SCHEMA_VERSION = "1.0"

#: The splits and their shares of scenario seeds (train 80 %, val 10 %, test 10 %).
SPLITS: tuple[tuple[str, int], ...] = (("train", 80), ("val", 10), ("test", 10))

_PROGRESS = ".progress.json"

# SUMO's documented vType defaults (length, width in m) per vClass, for vTypes that leave them out.
_VCLASS_SIZE: dict[str, tuple[float, float]] = {
    "passenger": (5.0, 1.8),
    "bus": (12.0, 2.5),
    "coach": (14.0, 2.6),
    "truck": (7.1, 2.4),
    "trailer": (16.5, 2.55),
    "delivery": (6.5, 2.16),
    "taxi": (5.0, 1.8),
    "motorcycle": (2.2, 0.9),
    "bicycle": (1.6, 0.65),
    "pedestrian": (0.215, 0.478),
}
_DEFAULT_TYPES: dict[str, str] = {
    "DEFAULT_VEHTYPE": "passenger",
    "DEFAULT_PEDTYPE": "pedestrian",
    "DEFAULT_BIKETYPE": "bicycle",
}
_KIND_OF_VCLASS = {"bus": "bus", "coach": "bus", "truck": "truck", "trailer": "truck", "delivery": "truck"}

Progress = Callable[[str, int, int], None]


def split_for_seed(seed: int) -> str:
    """Return the split (``train``, ``val`` or ``test``) of a scenario seed.

    The seed is hashed (SHA-256 of ``"roadtwin-split:{seed}"``) to a bucket 0-99: buckets 0-79 are
    ``train``, 80-89 ``val``, 90-99 ``test``. The same seed always lands in the same split, on any
    machine, and consecutive seeds spread over the three.
    """
    digest = hashlib.sha256(f"roadtwin-split:{int(seed)}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    edge = 0
    for name, share in SPLITS:
        edge += share
        if bucket < edge:
            return name
    return SPLITS[-1][0]  # pragma: no cover - the shares sum to 100


def resolve_run(run: str | Path, *, workspace: str | Path | None = None) -> Path:
    """Return the run folder ``run`` names: a folder path, or a run id inside ``workspace/runs``.

    Raises
    ------
    InputError
        No such run, or the run was not recorded with ``fcd`` (no ``fcd.parquet``).
    """
    from roadtwin.workspace import Workspace

    ws = Workspace.at(workspace)
    candidates = [Path(run), ws.root / "runs" / str(run)]
    found = next((p for p in candidates if p.is_dir() and (p / "config.yaml").is_file()), None)
    if found is None:
        raise InputError(
            path=run,
            field=None,
            expected=f"a run folder or the id of a run in {ws.root / 'runs'} (roadtwin sim run)",
        )
    if not (found / "fcd.parquet").is_file():
        raise InputError(
            path=found,
            field="fcd.parquet",
            expected="a run recorded for a dataset: run it with --record fcd,signals "
            "(roadtwin sim run SCENARIO --record fcd,signals)",
        )
    return found


class _Export:
    """The state of one export: the run, the output folder and the files already written."""

    def __init__(self, run_dir: Path, out: Path, *, progress: Progress | None) -> None:
        import yaml

        self.run_dir = run_dir
        self.out = out
        self.progress = progress
        self.config: dict[str, Any] = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        self.run_id = run_dir.name
        self.done: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self._net: NetXml | None = None
        self._trajectories: pa.Table | None = None
        self._layers: dict[str, Any] | None = None

    # --- bookkeeping -------------------------------------------------------------------------------

    def open(self, *, overwrite: bool) -> bool:
        """Prepare ``out``; return ``False`` when it already holds this run's complete export."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(path=out, field=None, expected="a folder for the dataset, not a file")
        entries = [p for p in out.iterdir()] if out.is_dir() else []
        if entries and overwrite:
            shutil.rmtree(out)
            entries = []
        if entries:
            state = read_json(out / _PROGRESS) or read_json(out / "manifest.json")
            if state.get("run_id") != self.run_id:
                raise InputError(
                    path=out,
                    field=None,
                    expected=f"an empty or new folder, or an unfinished export of run {self.run_id} "
                    "(pass --overwrite to replace it)",
                    got=f"{len(entries)} entries"
                    + (f" from run {state['run_id']}" if state.get("run_id") else ""),
                )
            if (out / "manifest.json").is_file() and not (out / _PROGRESS).is_file():
                return False
            for stale in out.rglob("*.tmp-*"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
            for rel, entry in dict(state.get("files", {})).items():
                path = out / rel
                if (
                    path.is_file()
                    and path.stat().st_size == entry["bytes"]
                    and sha256_file(path) == entry["sha256"]
                ):
                    self.done[rel] = entry
        out.mkdir(parents=True, exist_ok=True)
        self._save_progress()
        return True

    def _save_progress(self) -> None:
        write_json(
            self.out / _PROGRESS, {"run_id": self.run_id, "run_dir": str(self.run_dir), "files": self.done}
        )

    def write(self, rel: str, make: Callable[[Path], int | None], *, step: int, total: int) -> None:
        """Write ``out/rel`` with ``make(tmp) -> rows`` unless an earlier attempt already did."""
        if rel not in self.done:
            path = self.out / rel
            with atomic_path(path) as tmp:
                rows = make(tmp)
            self.done[rel] = {"rows": rows, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
            self._save_progress()
        if self.progress is not None:
            self.progress(rel, step, total)

    # --- inputs --------------------------------------------------------------------------------------

    @property
    def scenario(self) -> dict[str, Any]:
        return dict(self.config.get("scenario") or {})

    @property
    def seed(self) -> int:
        return int((self.config.get("run") or {}).get("seed", self.scenario.get("seed", 0)))

    @property
    def net(self) -> NetXml:
        if self._net is None:
            from roadtwin.datasets._map import read_net_xml

            net_file = Path(str((self.config.get("run") or {}).get("network_file", "")))
            if not net_file.is_file():
                raise InputError(
                    path=self.run_dir / "config.yaml",
                    field="run.network_file",
                    expected="the run's network file, still in place",
                    got=str(net_file),
                )
            self._net = read_net_xml(net_file)
        return self._net

    def window(self) -> tuple[float, float, float]:
        """The run's ``(begin, end, step_length)`` in s."""
        from roadtwin.sim.scenario import parse_time

        sc = self.scenario
        if "begin" in sc and "end" in sc:
            return parse_time(sc["begin"]), parse_time(sc["end"]), float(sc.get("step_length", 1.0))
        pq = require("pyarrow.parquet", extra="datasets", package="pyarrow")
        import pyarrow.compute as pc

        t = pq.read_table(self.run_dir / "fcd.parquet", columns=["timestep_time"])["timestep_time"]
        lo, hi = pc.min_max(t).values()
        return float(lo.as_py()), float(hi.as_py()) + 1.0, 1.0

    def trajectories(self) -> pa.Table:
        if self._trajectories is None:
            path = self.out / "trajectories.parquet"
            if "trajectories.parquet" in self.done:
                import pyarrow.parquet as pq

                self._trajectories = pq.read_table(path)
            else:
                self._trajectories = build_trajectories(self.run_dir, net=self.net)
        return self._trajectories

    def layers(self) -> dict[str, Any]:
        if self._layers is None:
            from roadtwin.datasets._map import map_layers

            self._layers = map_layers(self.net)
        return self._layers


def export_run(
    run_dir: str | Path,
    *,
    out: str | Path,
    overwrite: bool = False,
    progress: bool | Progress = True,
) -> Path:
    """Export a recorded run as a dataset folder (``datasets/SCHEMA.md``) and return the folder.

    Parameters
    ----------
    run_dir
        A run folder written by ``roadtwin sim run ... --record fcd,signals`` (``fcd`` is required;
        without ``signals`` the dataset has no ``signals.parquet``).
    out
        The dataset folder: new, empty, or an unfinished export of the same run (which resumes).
        An already complete export of the same run is left as it is.
    overwrite
        Replace whatever ``out`` holds.
    progress
        Print one line per file (``True``), nothing (``False``), or call ``f(relpath, i, n)``.

    Returns
    -------
    Path
        ``out``, holding ``manifest.json``.

    Raises
    ------
    InputError
        The run has no ``fcd.parquet`` or no network, or ``out`` holds something else.
    """
    run_dir = resolve_run(run_dir)
    out = Path(out)
    callback: Progress | None
    if progress is True:

        def callback(rel: str, i: int, n: int) -> None:
            print(f"[{i}/{n}] {rel}", file=sys.stderr, flush=True)

    else:
        callback = progress or None
    job = _Export(run_dir, out, progress=callback)
    if not job.open(overwrite=overwrite):
        return out

    from roadtwin.datasets._map import MAP_LAYERS

    plan: list[tuple[str, Callable[[Path], int | None]]] = [
        ("scenario.yaml", lambda tmp: _copy(run_dir / "config.yaml", tmp)),
        ("weather.json", lambda tmp: _weather(job, tmp)),
        ("trajectories.parquet", lambda tmp: _write_table(job.trajectories(), tmp)),
    ]
    if (run_dir / "signals.xml").is_file():
        plan.append(("signals.parquet", lambda tmp: _write_table(_signals(job), tmp)))
    else:
        job.notes.append("signals.parquet: the run was recorded without signals (--record signals)")
    cache = _map_cache(run_dir, job)
    for layer in MAP_LAYERS:
        make = _cached(cache, f"{layer}.parquet", partial(_write_job_layer, job, layer))
        plan.append((f"map/{layer}.parquet", make))
    plan.append(("map/network.xodr", _cached(cache, "network.xodr", lambda tmp: _opendrive(job, tmp))))
    notice = job.net.path.parent / "ATTRIBUTION.md"
    if notice.is_file():
        plan.append(("map/ATTRIBUTION.md", lambda tmp: _copy(notice, tmp)))
    feeds = run_dir / "feeds"
    if feeds.is_dir():
        for f in sorted(p for p in feeds.rglob("*") if p.is_file()):
            rel = f"sensors/roadside/{f.relative_to(feeds).as_posix()}"
            plan.append((rel, partial(_copy, f)))
    else:
        job.notes.append("sensors/roadside: the run has no feeds (roadtwin twin sense RUN)")
    try:
        from roadtwin.datasets.perception import sensor_views
    except ModuleNotFoundError as exc:
        if exc.name != "roadtwin.datasets.perception":
            raise
        job.notes.append("sensors/av_views.parquet: roadtwin.datasets.perception is not installed")
    else:
        plan.append(
            (
                "sensors/av_views.parquet",
                lambda tmp: _write_table(sensor_views(job.trajectories(), seed=job.seed), tmp),
            )
        )

    total = len(plan) + 1
    for i, (rel, make) in enumerate(plan, start=1):
        job.write(rel, make, step=i, total=total)
    job.write("manifest.json", lambda tmp: _manifest(job, tmp), step=total, total=total)
    (out / _PROGRESS).unlink(missing_ok=True)
    return out


# --- the files -------------------------------------------------------------------------------------------


def build_trajectories(run_dir: Path, *, net: NetXml) -> pa.Table:
    """Return the trajectories table (``datasets/SCHEMA.md``) from a run's ``fcd.parquet``."""
    pa = require("pyarrow", extra="datasets")
    import numpy as np
    import pyarrow.compute as pc

    from roadtwin.datasets._map import _projector

    fcd = _read_fcd(run_dir)
    walking = fcd["walking"].to_numpy(zero_copy_only=False)
    vtype = fcd["type"].combine_chunks()
    types = _vtypes(run_dir)

    # Per distinct vType: agent_type, length, width; then one gather per column.
    encoded = pc.dictionary_encode(vtype)
    which = encoded.indices.to_numpy(zero_copy_only=False)
    described = [_describe(str(name), types) for name in encoded.dictionary.to_pylist()]
    kind_arr = np.asarray([d[0] for d in described] or [""], dtype=object)[which]
    length = np.asarray([d[1] for d in described] or [0.0])[which]
    width = np.asarray([d[2] for d in described] or [0.0])[which]
    # A person of a vType the inputs do not define walks at SUMO's pedestrian size.
    undefined = np.asarray([name not in types for name in encoded.dictionary.to_pylist()] or [True])[which]
    kind_arr[walking] = "pedestrian"
    ped_len, ped_wid = _VCLASS_SIZE["pedestrian"]
    length = np.where(walking & undefined, ped_len, length)
    width = np.where(walking & undefined, ped_wid, width)

    x = fcd["x"].to_numpy()
    y = fcd["y"].to_numpy()
    lon, lat = _projector(net)(x, y)
    f32 = pa.float32()
    table = pa.table(
        {
            "agent_id": fcd["id"],
            "agent_type": pa.array(kind_arr, type=pa.string()),
            "vtype": vtype,
            "time_s": fcd["time"],
            "x": fcd["x"],
            "y": fcd["y"],
            "lon": pa.array(np.asarray(lon), type=pa.float64()),
            "lat": pa.array(np.asarray(lat), type=pa.float64()),
            "heading_deg": fcd["angle"],
            "speed_mps": fcd["speed"],
            "accel_mps2": fcd["accel"],
            "lane": fcd["lane"],
            "length_m": pa.array(length, type=f32),
            "width_m": pa.array(width, type=f32),
        }
    )
    # Sort on integers: the rank of each id among the distinct ids, then time (SUMO writes steps in order).
    ids = pc.dictionary_encode(table["agent_id"].combine_chunks())
    rank = np.empty(len(ids.dictionary), dtype=np.int64)
    rank[pc.array_sort_indices(ids.dictionary).to_numpy()] = np.arange(len(ids.dictionary))
    order = np.lexsort((rank[ids.indices.to_numpy(zero_copy_only=False)], table["time_s"].to_numpy()))
    return table.take(pa.array(order)).combine_chunks()


def _read_fcd(run_dir: Path) -> pa.Table:
    """Vehicles (``fcd.parquet``) and persons (``fcd-persons.parquet``) in one table of common columns.

    Columns ``time, id, x, y, angle, type, speed, lane, accel, walking``; a person's ``lane`` is its edge
    and its ``accel`` 0. A recording with the persons inside ``fcd.parquet`` (no lane) reads too.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    f32, f64 = pa.float32(), pa.float64()

    def part(table: pa.Table, prefix: str, *, persons: bool) -> pa.Table:
        table = table.filter(pc.is_valid(table[f"{prefix}_id"]))
        names = set(table.column_names)
        n = table.num_rows
        lane = table[f"{prefix}_lane"] if f"{prefix}_lane" in names else pa.nulls(n, pa.string())
        edge = table[f"{prefix}_edge"] if f"{prefix}_edge" in names else pa.nulls(n, pa.string())
        walking = pc.is_null(lane) if not persons else pa.array(np.ones(n, dtype=bool))
        accel = (
            pc.fill_null(table[f"{prefix}_acceleration"], 0.0)
            if f"{prefix}_acceleration" in names
            else pa.array(np.zeros(n, dtype=np.float32))
        )
        return pa.table(
            {
                "time": table["timestep_time"].cast(f64),
                "id": table[f"{prefix}_id"].cast(pa.string()),
                "x": table[f"{prefix}_x"].cast(f64),
                "y": table[f"{prefix}_y"].cast(f64),
                "angle": table[f"{prefix}_angle"].cast(f32),
                "type": table[f"{prefix}_type"].cast(pa.string()),
                "speed": table[f"{prefix}_speed"].cast(f32),
                "lane": pc.coalesce(lane, edge).cast(pa.string()),
                "accel": pc.if_else(walking, pa.scalar(0.0, f32), accel.cast(f32)),
                "walking": walking,
            }
        )

    parts = [part(pq.read_table(run_dir / "fcd.parquet"), "vehicle", persons=False)]
    persons = run_dir / "fcd-persons.parquet"
    if persons.is_file() and "person_id" in pq.read_schema(persons).names:
        parts.append(part(pq.read_table(persons), "person", persons=True))
    return pa.concat_tables(parts).combine_chunks()


def _vtypes(run_dir: Path) -> dict[str, dict[str, str]]:
    """The vTypes the run's inputs define: ``{id: attributes (+ 'automated' param)}``."""
    from lxml import etree

    found: dict[str, dict[str, str]] = {}
    inputs = run_dir / "inputs"
    for path in sorted(inputs.rglob("*.xml")) if inputs.is_dir() else []:
        try:
            for _, el in etree.iterparse(str(path), events=("end",), tag=("vType", "vehicle", "person")):
                if el.tag == "vType":
                    attrs = dict(el.attrib)
                    for param in el.iter("param"):
                        attrs[f"param:{param.get('key')}"] = param.get("value", "")
                    found[attrs.get("id", "")] = attrs
                el.clear()
        except etree.XMLSyntaxError:
            continue
    return found


def _describe(vtype: str, types: dict[str, dict[str, str]]) -> tuple[str, float, float]:
    """``(agent_type, length, width)`` of a vType id."""
    from roadtwin.sim.vehicles import KINDS

    attrs = types.get(vtype, {})
    vclass = attrs.get("vClass") or _DEFAULT_TYPES.get(vtype, "passenger")
    base_len, base_wid = _VCLASS_SIZE.get(vclass, _VCLASS_SIZE["passenger"])
    length = float(attrs.get("length", base_len))
    width = float(attrs.get("width", base_wid))
    if vclass == "pedestrian":
        kind = "pedestrian"
    elif attrs.get("param:automated", "").lower() == "true" or vtype == "av":
        kind = "av"
    elif vtype in KINDS:
        kind = vtype
    else:
        kind = _KIND_OF_VCLASS.get(vclass, "car")
    return kind, length, width


def _signals(job: _Export) -> pa.Table:
    """Signal state per controlled link per step, expanded from SUMO's state changes."""
    pa = require("pyarrow", extra="datasets")
    import numpy as np
    from lxml import etree

    from roadtwin.datasets._map import signal_links

    switches: dict[str, list[tuple[float, str]]] = {}
    for _, el in etree.iterparse(str(job.run_dir / "signals.xml"), events=("end",), tag="tlsState"):
        switches.setdefault(el.get("id"), []).append((float(el.get("time")), el.get("state")))
        el.clear()
    begin, end, step = job.window()
    times = begin + step * np.arange(round((end - begin) / step))
    links = signal_links(job.net)
    blocks, tls_col, index_col, from_col, to_col = [], [], [], [], []
    for tls in sorted(switches):
        changes = sorted(switches[tls], key=lambda c: c[0])
        width = max(len(s) for _, s in changes)
        codes = np.frombuffer("".join(s.ljust(width, "o") for _, s in changes).encode(), dtype=np.uint8)
        codes = codes.reshape(len(changes), width)
        at = np.searchsorted(np.array([t for t, _ in changes]), times, side="right") - 1
        blocks.append(codes[np.clip(at, 0, None)])
        per = links.get(tls, {})
        for k in range(width):
            tls_col.append(tls)
            index_col.append(k)
            frm, to = per.get(k, (None, None))
            from_col.append(frm)
            to_col.append(to)
    n_links = len(tls_col)
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(times), 0), dtype=np.uint8)
    link_of_row = np.tile(np.arange(n_links, dtype=np.int32), len(times))

    def per_link(values: list[Any]) -> Any:
        uniq = sorted({v for v in values if v is not None})
        where = {v: i for i, v in enumerate(uniq)}
        codes = pa.array([where.get(v) for v in values], type=pa.int32()).take(pa.array(link_of_row))
        return pa.DictionaryArray.from_arrays(codes, pa.array(uniq, type=pa.string()))

    chars, state_idx = np.unique(matrix.reshape(-1), return_inverse=True)
    state = pa.DictionaryArray.from_arrays(
        pa.array(state_idx.astype(np.int32)), pa.array([chr(c) for c in chars], type=pa.string())
    )
    return pa.table(
        {
            "time_s": pa.array(np.repeat(times, n_links), type=pa.float64()),
            "tls_id": per_link(tls_col),
            "link_index": pa.array(np.asarray(index_col, dtype=np.int16)[link_of_row], type=pa.int16()),
            "from_lane": per_link(from_col),
            "to_lane": per_link(to_col),
            "state": state,
        }
    )


def _weather(job: _Export, tmp: Path) -> None:
    from dataclasses import asdict

    from roadtwin.sim.weather import weather_effect

    weather = job.scenario.get("weather") or {}
    condition = weather.get("condition") if isinstance(weather, dict) else weather
    data: dict[str, Any] = {"condition": condition, "intensity": None}
    if condition:
        effect = weather_effect(condition, weather.get("intensity") if isinstance(weather, dict) else None)
        data = asdict(effect)
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _map_cache(run_dir: Path, job: _Export) -> Path | None:
    """``WORKSPACE/datasets/.map-cache/KEY/`` for a run inside a workspace, else ``None``.

    The map files depend only on the network (and this code): every run on the same network shares
    them, which saves the map's build (about a second on the zone) on every export after the first.
    """
    if run_dir.parent.name != "runs":
        return None
    key = hashlib.sha256(f"{SCHEMA_VERSION}:{__version__}:{sha256_file(job.net.path)}".encode()).hexdigest()
    return run_dir.parent.parent / "datasets" / ".map-cache" / key[:16]


def _cached(
    cache: Path | None, name: str, make: Callable[[Path], int | None]
) -> Callable[[Path], int | None]:
    """``make``, served from (and saved to) the map cache when there is one."""
    if cache is None:
        return make

    def wrapped(tmp: Path) -> int | None:
        hit = cache / name
        if hit.is_file():
            return _copy(hit, tmp)
        rows = make(tmp)
        with atomic_path(hit) as saved:
            shutil.copyfile(tmp, saved)
        return rows

    return wrapped


def _opendrive(job: _Export, tmp: Path) -> None:
    """netconvert's OpenDRIVE without its generation stamp and date (the same network, the same bytes)."""
    import re

    from roadtwin.maps import export_network

    scratch = tmp.with_name(f".{tmp.name}.d")
    try:
        (written, *_) = export_network(job.net.path, fmt="opendrive", out=scratch / "network.xodr")
        text = written.read_text(encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = re.sub(r"<!-- generated on .*?-->\s*", "", text, count=1, flags=re.S)
    text = re.sub(r'(<header\b[^>]*?\bdate=")[^"]*(")', r"\g<1>\g<2>", text, count=1)
    tmp.write_text(text, encoding="utf-8")


def _manifest(job: _Export, tmp: Path) -> None:
    import datetime as dt

    pc = require("pyarrow.compute", extra="datasets", package="pyarrow")
    traj = job.trajectories()
    agents = traj.group_by("agent_type").aggregate([("agent_id", "count_distinct")])
    begin, end, step = job.window()
    run = job.config.get("run") or {}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": job.run_id,
        "scenario": job.scenario.get("name") or job.run_id.split("__")[0],
        "seed": job.seed,
        "split": split_for_seed(job.seed),
        "window": {"begin_s": begin, "end_s": end, "step_length_s": step},
        "projection": {"proj": job.net.proj, "net_offset": list(job.net.net_offset)},
        "agents": dict(
            sorted(
                zip(
                    agents["agent_type"].to_pylist(),
                    agents["agent_id_count_distinct"].to_pylist(),
                    strict=True,
                )
            )
        ),
        "time_range_s": [pc.min(traj["time_s"]).as_py(), pc.max(traj["time_s"]).as_py()],
        "files": dict(sorted(job.done.items())),
        "notes": job.notes,
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "roadtwin_version": __version__,
        "sumo_version": run.get("sumo_version", "unknown"),
    }
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --- helpers --------------------------------------------------------------------------------------------


def _write_table(table: pa.Table, tmp: Path) -> int:
    import pyarrow.parquet as pq

    pq.write_table(table, tmp, compression="zstd")
    return int(table.num_rows)


def _write_layer(frame: Any, tmp: Path) -> int:
    frame.to_parquet(tmp, index=False, compression="zstd")
    return len(frame)


def _write_job_layer(job: _Export, layer: str, tmp: Path) -> int:
    return _write_layer(job.layers()[layer], tmp)


def _copy(src: Path, tmp: Path) -> int | None:
    shutil.copyfile(src, tmp)
    if src.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(src).metadata.num_rows)
    return None


# --- CLI ------------------------------------------------------------------------------------------------


class ExportOptions(StrictModel):
    """Options of ``roadtwin datasets export`` (also settable in a ``--config`` YAML file)."""

    run: str
    out: Path | None = None
    workspace: Path = Path("roadtwin-data")
    overwrite: bool = False
    progress: bool = True


def export_command(
    run: Annotated[
        str | None, typer.Argument(help="A run folder, or a run id in the workspace's runs/.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Dataset folder: new or empty (default WORKSPACE/datasets/RUN_ID)."),
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option(help="Workspace folder (default ./roadtwin-data).")
    ] = None,
    overwrite: Annotated[
        bool | None, typer.Option("--overwrite/--no-overwrite", help="Replace what --out holds.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Print one line per file.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these options.")] = None,
) -> None:
    """Export a run recorded with --record fcd,signals as a driving dataset (datasets/SCHEMA.md).

    Writes trajectories, signal states, the map (GeoParquet, OpenDRIVE), sensor views, weather,
    the scenario and manifest.json. Run it again on the same --out to resume a killed export.
    """
    from roadtwin.workspace import Workspace

    opts = load_options(
        ExportOptions, config=config, run=run, out=out, workspace=workspace, overwrite=overwrite,
        progress=progress,
    )  # fmt: skip
    run_dir = resolve_run(opts.run, workspace=opts.workspace)
    target = opts.out if opts.out is not None else Workspace.at(opts.workspace).datasets / run_dir.name
    t0 = time.perf_counter()
    export_run(run_dir, out=target, overwrite=opts.overwrite, progress=opts.progress)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    rows = manifest["files"].get("trajectories.parquet", {}).get("rows", 0)
    typer.echo(
        f"dataset: {target} ({manifest['split']}, {rows:,} trajectory rows, "
        f"{len(manifest['files'])} files, {time.perf_counter() - t0:.1f} s)"
    )
