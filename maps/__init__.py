"""Zones and road networks: build SUMO networks, read them as GeoDataFrames, export them.

Importing this package is cheap: geopandas and sumolib are imported by the functions that need them.
"""

from roadtwin.maps.build import build_network, network_for
from roadtwin.maps.export import EXPORT_FORMATS, export_network
from roadtwin.maps.network import (
    NetworkFrames,
    NetworkSummary,
    load_net,
    network_frames,
    summarize_network,
)
from roadtwin.maps.zone import Junction, Link, SpeedPolicy, Zone, list_zones, load_zone

__all__ = [
    "EXPORT_FORMATS",
    "Junction",
    "Link",
    "NetworkFrames",
    "NetworkSummary",
    "SpeedPolicy",
    "Zone",
    "build_network",
    "export_network",
    "list_zones",
    "load_net",
    "load_zone",
    "network_for",
    "network_frames",
    "summarize_network",
]
