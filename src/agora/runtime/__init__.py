"""Runtimes: settings, the HTTP application, and the wiring of `agora up`."""
