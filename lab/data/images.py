"""Decoding one poster file into RGB pixels, or a reason why it cannot be used."""

from __future__ import annotations

import os
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from lab.errors import LabError

# Posters are small; anything past this is refused before decoding, as a likely decompression bomb.
MAX_PIXELS = 40_000_000
DEFAULT_SIZE = (64, 96)
CHUNK = 64  # posters per task sent to a decoding worker


class BadImage(Exception):
    """The file cannot be used as a poster; str(e) is the reason."""


def parse_size(text: str) -> tuple[int, int]:
    """'64x96' -> (64, 96): width then height, as image sizes are written."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or not (8 <= int(m[1]) <= 2048 and 8 <= int(m[2]) <= 2048):
        raise LabError(f"image size {text!r} is not WIDTHxHEIGHT between 8 and 2048, e.g. 64x96")
    return int(m[1]), int(m[2])


def decode_poster(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode to an RGB uint8 array (H, W, 3), scaled and centre-cropped to `size` (W, H).

    Cropping rather than stretching keeps a poster's proportions whatever `size` asks.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise BadImage(f"{w}x{h} pixels is over the {MAX_PIXELS:,} limit "
                                   "(refused as a possible decompression bomb)")
                if size is not None:
                    # JPEG can decode straight at a reduced scale: much faster for thumbnails.
                    im.draft("RGB", (size[0] * 2, size[1] * 2))
                im.load()
                rgb = _to_rgb(im)
    except BadImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage("not an image" if isinstance(e, UnidentifiedImageError) else
                       f"refused as a possible decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"truncated or corrupt image ({e})") from None
    if size is not None:
        rgb = ImageOps.fit(rgb, size, method=Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Greyscale, palette, CMYK and 16-bit become RGB; transparency is laid on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = arr.max() or 1.0
        return Image.fromarray((arr / top * 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def decode_many(paths: list[str], size: tuple[int, int], *, workers: int | None = None, progress: bool = True):
    """Decode posters in parallel; yields (first index, pixels (n, H, W, 3), {index: reason}) per chunk.

    Chunks come in order, so the caller can write them straight into an array.
    """
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool, \
            tqdm(total=len(paths), desc=f"decoding posters at {size[0]}x{size[1]}", unit="poster",
                 disable=not progress) as bar:
        for c, (pixels, errors) in enumerate(pool.map(_decode_chunk, chunks, [size] * len(chunks))):
            start = c * CHUNK
            yield start, pixels, {start + k: reason for k, reason in errors.items()}
            bar.update(len(pixels))


def _decode_chunk(paths: list[str], size) -> tuple[np.ndarray, dict[int, str]]:
    pixels = np.zeros((len(paths), size[1], size[0], 3), np.uint8)
    errors = {}
    for k, path in enumerate(paths):
        try:
            pixels[k] = decode_poster(path, size)
        except BadImage as e:
            errors[k] = str(e)
    return pixels, errors
