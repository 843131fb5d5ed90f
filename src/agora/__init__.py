"""Agora: an event-driven marketplace and ticketing backend."""

__version__ = "0.1.0"
