"""RoadTwin twin."""
