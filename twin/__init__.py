"""The twin: sensor models and feeds, the store, state estimation, calibration and forecasts into the store.

Importing this package loads neither DuckDB nor torch; :class:`Store` opens DuckDB when created.
"""

from roadtwin.twin.calibration import CalibrationResult, calibrate, geh, loop_counts
from roadtwin.twin.estimation import STATE_COLUMNS, estimate_state, score_state, write_state
from roadtwin.twin.predict import FORECAST_COLUMNS, issue_forecasts, score_forecasts, write_forecasts
from roadtwin.twin.replay import ReplayResult, replay_day
from roadtwin.twin.schemas import FEED_KINDS, FIELDS, KEYS, SCHEMAS, SENSORS_SCHEMA, detect_kind
from roadtwin.twin.sensors import ProbeModel, SenseResult, SensorModel, placement, reference_day, sense
from roadtwin.twin.store import FileReport, IngestReport, Store, ingest

__all__ = [
    "FEED_KINDS",
    "FIELDS",
    "FORECAST_COLUMNS",
    "KEYS",
    "SCHEMAS",
    "SENSORS_SCHEMA",
    "STATE_COLUMNS",
    "CalibrationResult",
    "FileReport",
    "IngestReport",
    "ProbeModel",
    "ReplayResult",
    "SenseResult",
    "SensorModel",
    "Store",
    "calibrate",
    "detect_kind",
    "estimate_state",
    "geh",
    "ingest",
    "issue_forecasts",
    "loop_counts",
    "placement",
    "reference_day",
    "replay_day",
    "score_forecasts",
    "score_state",
    "sense",
    "write_forecasts",
    "write_state",
]
