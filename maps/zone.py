"""Zones: the project's own descriptions of an arterial grid (junctions, links, posted speeds).

A zone is a folder with ``zone.yaml`` (name, bbox, UTM zone, source, speed policy), ``junctions.csv``
(``id, lon, lat, streets, signalized``), ``links.csv`` (``from, to, street, lanes, speed_kmh``) and
``ATTRIBUTION.md``. Built-in zones live in ``maps/zones/``; :func:`load_zone` also takes a folder path.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from roadtwin.config import StrictModel, read_yaml_mapping, validation_error
from roadtwin.errors import NetworkError

__all__ = ["ZONES_DIR", "Junction", "Link", "SpeedPolicy", "Zone", "list_zones", "load_zone"]

ZONES_DIR = Path(__file__).resolve().parent / "zones"
"""Folder of the built-in zones."""

_ZONE_FILES = ("zone.yaml", "junctions.csv", "links.csv")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Junction:
    """A node of the zone: a signalized junction of the core or an unsignalized fringe node."""

    id: str
    lon: float
    lat: float
    streets: tuple[str, ...]
    signalized: bool


@dataclass(frozen=True)
class Link:
    """A directed road link between two junctions (one SUMO edge, id ``{from}_{to}``)."""

    from_id: str
    to_id: str
    street: str
    lanes: int
    speed_kmh: float

    @property
    def id(self) -> str:
        """The SUMO edge id, ``{from}_{to}``."""
        return f"{self.from_id}_{self.to_id}"


@dataclass(frozen=True)
class SpeedPolicy:
    """Posted speed limits: bounds and the limit by lanes per direction."""

    min_kmh: float
    max_kmh: float
    by_lanes: dict[int, float]


@dataclass(frozen=True)
class Zone:
    """A validated zone: metadata from ``zone.yaml`` plus its junctions and links."""

    name: str
    title: str
    description: str
    bbox: tuple[float, float, float, float]
    utm_zone: int
    hemisphere: Literal["north", "south"]
    source: str
    speed_policy: SpeedPolicy
    junctions: tuple[Junction, ...]
    links: tuple[Link, ...]
    folder: Path
    digest: str

    @property
    def proj(self) -> str:
        """The PROJ string of the zone's UTM projection (what netconvert's ``--proj`` takes)."""
        south = " +south" if self.hemisphere == "south" else ""
        return f"+proj=utm +zone={self.utm_zone}{south} +ellps=WGS84 +datum=WGS84 +units=m +no_defs"

    @property
    def signalized(self) -> tuple[Junction, ...]:
        """The junctions that get a traffic light."""
        return tuple(j for j in self.junctions if j.signalized)

    @property
    def attribution(self) -> str:
        """The text of the zone's ``ATTRIBUTION.md`` (empty when it has none)."""
        path = self.folder / "ATTRIBUTION.md"
        return path.read_text(encoding="utf-8") if path.is_file() else ""


class _SpeedPolicyModel(StrictModel):
    min_kmh: float = Field(gt=0)
    max_kmh: float = Field(gt=0)
    by_lanes: dict[int, float]


class _ZoneModel(StrictModel):
    name: str
    title: str
    description: str = ""
    bbox: tuple[float, float, float, float]
    crs: Literal["EPSG:4326"] = "EPSG:4326"
    utm_zone: int = Field(ge=1, le=60)
    hemisphere: Literal["north", "south"] = "north"
    source: str
    speed_policy: _SpeedPolicyModel

    @field_validator("name")
    @classmethod
    def _file_safe(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a name of letters, digits, '_' or '-'")
        return value

    @field_validator("bbox")
    @classmethod
    def _ordered(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        lon0, lat0, lon1, lat1 = value
        if not (-180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90):
            raise ValueError("[lon_min, lat_min, lon_max, lat_max] in WGS84 degrees")
        return value


def list_zones() -> list[str]:
    """Return the names of the built-in zones."""
    if not ZONES_DIR.is_dir():
        return []
    return sorted(p.name for p in ZONES_DIR.iterdir() if (p / "zone.yaml").is_file())


def load_zone(name: str | os.PathLike[str] = "yizhuang") -> Zone:
    """Load and validate a zone.

    Parameters
    ----------
    name
        A built-in zone's name (see :func:`list_zones`) or the path of a zone folder.

    Returns
    -------
    Zone
        The validated zone.

    Raises
    ------
    NetworkError
        The zone does not exist, or one of its files is missing or malformed (the message names the file,
        the line and the field).
    """
    folder = _zone_folder(name)
    for fname in _ZONE_FILES:
        if not (folder / fname).is_file():
            raise NetworkError(path=folder / fname, field=None, expected="an existing zone file")
    meta = _read_meta(folder / "zone.yaml")
    policy = SpeedPolicy(meta.speed_policy.min_kmh, meta.speed_policy.max_kmh, meta.speed_policy.by_lanes)
    junctions = _read_junctions(folder / "junctions.csv", bbox=meta.bbox)
    links = _read_links(folder / "links.csv", junctions={j.id for j in junctions}, policy=policy)
    used = {j for link in links for j in (link.from_id, link.to_id)}
    for j in junctions:
        if j.id not in used:
            raise NetworkError(
                path=folder / "junctions.csv", field=f"id {j.id}", expected="a junction used by some link"
            )
    if not any(j.signalized for j in junctions):
        raise NetworkError(
            path=folder / "junctions.csv", field="signalized", expected="at least one signalized junction"
        )
    return Zone(
        name=meta.name,
        title=meta.title,
        description=meta.description,
        bbox=meta.bbox,
        utm_zone=meta.utm_zone,
        hemisphere=meta.hemisphere,
        source=meta.source,
        speed_policy=policy,
        junctions=tuple(junctions),
        links=tuple(links),
        folder=folder,
        digest=_digest(folder),
    )


def _zone_folder(name: str | os.PathLike[str]) -> Path:
    text = os.fspath(name)
    if _NAME.match(text) and (ZONES_DIR / text / "zone.yaml").is_file():
        return ZONES_DIR / text
    path = Path(text)
    if path.is_dir() and (path / "zone.yaml").is_file():
        return path
    known = ", ".join(list_zones()) or "none"
    raise NetworkError(
        path=text, field="zone", expected=f"a built-in zone ({known}) or a folder holding zone.yaml"
    )


def _read_meta(path: Path) -> _ZoneModel:
    data = read_yaml_mapping(path, error=NetworkError)
    try:
        meta = _ZoneModel.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path=path, error=NetworkError) from None
    policy = meta.speed_policy
    if policy.min_kmh > policy.max_kmh:
        raise NetworkError(path=path, field="speed_policy.min_kmh", expected="min_kmh <= max_kmh")
    for lanes, kmh in policy.by_lanes.items():
        if not policy.min_kmh <= kmh <= policy.max_kmh:
            raise NetworkError(
                path=path,
                field=f"speed_policy.by_lanes.{lanes}",
                expected=f"a speed within {policy.min_kmh:g}-{policy.max_kmh:g} km/h",
                got=kmh,
            )
    return meta


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise NetworkError(
                    path=path, field="header", expected=f"columns {', '.join(columns)}", got=",".join(header)
                )
            return [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError:
        raise NetworkError(path=path, field=None, expected="a UTF-8 CSV file") from None
    except csv.Error as exc:
        raise NetworkError(path=path, field=None, expected=f"a valid CSV file ({exc})") from None


def _number(path: Path, line: int, row: dict[str, str], column: str, *, integer: bool = False) -> float:
    raw = (row.get(column) or "").strip()
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise NetworkError(path=path, field=f"line {line}: {column}", expected=kind, got=raw) from None


def _read_junctions(path: Path, *, bbox: tuple[float, float, float, float]) -> list[Junction]:
    lon0, lat0, lon1, lat1 = bbox
    junctions: list[Junction] = []
    seen: set[str] = set()
    for line, row in _rows(path, ("id", "lon", "lat", "streets", "signalized")):
        jid = (row["id"] or "").strip()
        if not _ID.match(jid) or jid in seen:
            raise NetworkError(path=path, field=f"line {line}: id", expected="a unique id", got=jid)
        seen.add(jid)
        lon = _number(path, line, row, "lon")
        lat = _number(path, line, row, "lat")
        if not (lon0 <= lon <= lon1 and lat0 <= lat <= lat1):
            raise NetworkError(
                path=path,
                field=f"line {line}: lon/lat",
                expected=f"a point inside the zone's bbox {list(bbox)}",
                got=f"{lon}, {lat}",
            )
        flag = (row["signalized"] or "").strip().lower()
        if flag not in ("0", "1", "true", "false"):
            raise NetworkError(path=path, field=f"line {line}: signalized", expected="0 or 1", got=flag)
        streets = tuple(s.strip() for s in (row["streets"] or "").split("/") if s.strip())
        junctions.append(Junction(jid, lon, lat, streets, flag in ("1", "true")))
    if not junctions:
        raise NetworkError(path=path, field=None, expected="at least one junction")
    return junctions


def _read_links(path: Path, *, junctions: set[str], policy: SpeedPolicy) -> list[Link]:
    links: list[Link] = []
    seen: set[tuple[str, str]] = set()
    for line, row in _rows(path, ("from", "to", "street", "lanes", "speed_kmh")):
        a, b = (row["from"] or "").strip(), (row["to"] or "").strip()
        for column, value in (("from", a), ("to", b)):
            if value not in junctions:
                where = f"line {line}: {column}"
                raise NetworkError(path=path, field=where, expected="a junction of junctions.csv", got=value)
        if a == b or (a, b) in seen:
            raise NetworkError(
                path=path, field=f"line {line}: from/to", expected="a new pair of distinct junctions"
            )
        seen.add((a, b))
        street = (row["street"] or "").strip()
        if not street:
            raise NetworkError(path=path, field=f"line {line}: street", expected="a street name")
        lanes = int(_number(path, line, row, "lanes", integer=True))
        if not 1 <= lanes <= 8:
            raise NetworkError(path=path, field=f"line {line}: lanes", expected="1 to 8 lanes", got=lanes)
        speed = _number(path, line, row, "speed_kmh")
        if not policy.min_kmh <= speed <= policy.max_kmh:
            raise NetworkError(
                path=path,
                field=f"line {line}: speed_kmh",
                expected=f"a posted speed within {policy.min_kmh:g}-{policy.max_kmh:g} km/h",
                got=speed,
            )
        links.append(Link(a, b, street, lanes, speed))
    if not links:
        raise NetworkError(path=path, field=None, expected="at least one link")
    return links


def _digest(folder: Path) -> str:
    """Hash the zone's files, so that a network built from them knows when it is stale."""
    h = hashlib.sha256()
    for fname in sorted(p.name for p in folder.iterdir() if p.is_file()):
        h.update(fname.encode())
        h.update(b"\0")
        h.update((folder / fname).read_bytes())
        h.update(b"\0")
    return h.hexdigest()
