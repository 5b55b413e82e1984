"""Broker domain models, the `Broker` protocol, and its implementations."""
