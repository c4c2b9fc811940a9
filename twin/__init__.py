"""The twin: sensor models and feeds, and the store they are ingested into.

Importing this package loads neither DuckDB nor torch; :class:`Store` opens DuckDB when created.
"""

from roadtwin.twin.schemas import FEED_KINDS, FIELDS, KEYS, SCHEMAS, SENSORS_SCHEMA, detect_kind
from roadtwin.twin.sensors import ProbeModel, SenseResult, SensorModel, placement, reference_day, sense
from roadtwin.twin.store import FileReport, IngestReport, Store, ingest

__all__ = [
    "FEED_KINDS",
    "FIELDS",
    "KEYS",
    "SCHEMAS",
    "SENSORS_SCHEMA",
    "FileReport",
    "IngestReport",
    "ProbeModel",
    "SenseResult",
    "SensorModel",
    "Store",
    "detect_kind",
    "ingest",
    "placement",
    "reference_day",
    "sense",
]
