"""The one way a ticket's code is drawn as a QR code: the image ticketing serves at its QR
routes and the one notifications sends in the ticket's email, so that a scanner reads both
alike."""

from __future__ import annotations

import io
from typing import Literal

import segno

__all__ = ["qr_image"]


def qr_image(code: str, kind: Literal["svg", "png"]) -> bytes:
    """`code` as a QR code (error correction M, 4 pixels a module, the standard 4-module quiet
    zone), as an SVG document or a PNG image."""
    buffer = io.BytesIO()
    segno.make(code, error="m").save(buffer, kind=kind, scale=4, border=4)
    return buffer.getvalue()
