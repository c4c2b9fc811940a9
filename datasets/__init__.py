"""RoadTwin datasets: recorded runs as driving datasets (layout and schema: ``SCHEMA.md``).

- :func:`export_run`: one run -> trajectories, signal states, map, sensor views, manifest;
- :func:`build_samples`: motion-forecasting samples in the Waymo Open Motion Dataset layout (``MOTION.md``);
- :func:`write_openscenarios`: OpenSCENARIO files of situations around automated vehicles;
- :func:`generate`: many varied scenarios, run and exported on Ray.
"""

from roadtwin.datasets.export import SCHEMA_VERSION, export_run, resolve_run, split_for_seed
from roadtwin.datasets.factory import FactoryOptions, FactoryReport, generate
from roadtwin.datasets.motion import build_samples
from roadtwin.datasets.openscenario import find_situations, write_openscenarios
from roadtwin.datasets.perception import sensor_views

__all__ = [
    "SCHEMA_VERSION",
    "FactoryOptions",
    "FactoryReport",
    "build_samples",
    "export_run",
    "find_situations",
    "generate",
    "resolve_run",
    "sensor_views",
    "split_for_seed",
    "write_openscenarios",
]
