"""The Dagster layer: assets, checks, jobs and resources around the pure core."""
