"""Dagster instance plug-ins the deployments name in their instance files (deploy/instance/)."""
