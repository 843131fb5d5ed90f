"""The one error of `agora.infra`."""

from __future__ import annotations

__all__ = ["InfraError"]


class InfraError(RuntimeError):
    """A server could not be installed, started, stopped or reached; the message says why and
    where its log is."""
