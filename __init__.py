"""RoadTwin: a vehicle-road-cloud traffic digital twin and signal optimizer.

Data flows one way: ``maps -> sim -> (twin, agents, datasets) -> dashboards``.
Importing ``roadtwin`` is cheap: the areas are imported on demand (``import roadtwin.sim``).
"""

from roadtwin.errors import (
    ConfigError,
    InputError,
    MissingExtraError,
    NetworkError,
    RoadTwinError,
    ScenarioError,
    SimulationError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InputError",
    "MissingExtraError",
    "NetworkError",
    "RoadTwinError",
    "ScenarioError",
    "SimulationError",
    "__version__",
]
