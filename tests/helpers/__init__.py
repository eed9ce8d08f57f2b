"""Shared test helpers: synthetic data and model builders used by tests across services."""
