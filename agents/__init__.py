"""RoadTwin agents."""
