"""RoadTwin datasets."""
