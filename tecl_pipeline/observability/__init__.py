"""Observability: structured redacted logs (`logs`), alerts (`alerts`), redaction (`redaction`).

Import the submodules directly; this package module stays empty so that importing the
light logging part does not pull in the alerting one.
"""
