"""The workspace: one folder holding everything RoadTwin produces.

Layout (DESIGN.md): ``networks/``, ``runs/<run-id>/``, ``datasets/``, and one DuckDB store.
Run ids are ``{scenario}__{controller}__{seed}__{timestamp}``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_WORKSPACE", "Workspace", "run_id"]

DEFAULT_WORKSPACE = Path("roadtwin-data")

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def run_id(*, scenario: str, controller: str, seed: int, timestamp: float | None = None) -> str:
    """Return ``{scenario}__{controller}__{seed}__{YYYYmmdd-HHMMSS}`` with file-safe parts."""
    stamp = time.strftime(
        "%Y%m%d-%H%M%S", time.localtime(timestamp if timestamp is not None else time.time())
    )
    parts = [_SAFE.sub("-", str(p)).strip("-") or "x" for p in (scenario, controller, seed)]
    return "__".join([*parts, stamp])


@dataclass(frozen=True)
class Workspace:
    """A workspace folder; its sub-folders are created on first use."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Workspace:
        """Open (without creating) the workspace at ``root`` (default ``./roadtwin-data``)."""
        return cls(Path(root) if root is not None else DEFAULT_WORKSPACE)

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def networks(self) -> Path:
        """Folder of built or imported networks."""
        return self._sub("networks")

    @property
    def runs(self) -> Path:
        """Folder of run folders."""
        return self._sub("runs")

    @property
    def datasets(self) -> Path:
        """Folder of exported datasets."""
        return self._sub("datasets")

    @property
    def exports(self) -> Path:
        """Folder of exported networks (GeoParquet, OpenDRIVE)."""
        return self._sub("exports")

    @property
    def reports(self) -> Path:
        """Folder of HTML reports."""
        return self._sub("reports")

    @property
    def store_path(self) -> Path:
        """The DuckDB file of the twin's store."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / "roadtwin.duckdb"

    def new_run_dir(self, *, scenario: str, controller: str, seed: int) -> Path:
        """Create and return a fresh, uniquely named run folder."""
        base = run_id(scenario=scenario, controller=controller, seed=seed)
        path = self.runs / base
        n = 1
        while path.exists():
            n += 1
            path = self.runs / f"{base}-{n}"
        path.mkdir(parents=True)
        return path
