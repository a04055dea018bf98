"""Pictures as data: URIs, so that a report is one file that needs no server and no network."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

POSTER_QUALITY = 82  # JPEG quality of embedded posters: small files, no visible loss at thumbnail size


def image_uri(picture: np.ndarray | Image.Image, width: int | None = None, fmt: str = "JPEG") -> str:
    """A uint8 (H, W, 3) array or a PIL image, scaled down to `width` pixels if wider, as a data: URI."""
    image = Image.fromarray(picture) if isinstance(picture, np.ndarray) else picture
    image = image.convert("RGB")
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": POSTER_QUALITY} if fmt == "JPEG" else {"optimize": True}))
    return bytes_uri(buffer.getvalue(), f"image/{fmt.lower()}")


def file_uri(path: Path, width: int | None = None) -> str:
    """An image file on disk, re-encoded as JPEG (grids and samples are PNGs that JPEG makes far smaller)."""
    with Image.open(path) as image:
        return image_uri(image, width)


def bytes_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
