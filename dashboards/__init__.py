"""RoadTwin dashboards."""
