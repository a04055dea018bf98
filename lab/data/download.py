"""A bounded, parallel, resumable downloader for poster URLs.

Bounded: a fixed number of threads, a timeout per request and a size cap per file. Resumable: a
file is written as `.part` and renamed when complete, so a rerun skips what is done and redoes
only what was cut off.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

MAX_BYTES = 20 * 1024 * 1024


def download_all(jobs: list[tuple[str, Path]], *, workers: int = 8, timeout: float = 20, retries: int = 2,
                 max_bytes: int = MAX_BYTES, progress: bool = True) -> dict[Path, str | None]:
    """Fetch each (url, destination); returns destination -> None, or why it failed."""
    todo = [(url, Path(dest)) for url, dest in jobs if not Path(dest).exists()]
    results: dict[Path, str | None] = {Path(dest): None for _, dest in jobs}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(todo), desc="downloading posters", unit="poster", disable=not progress) as bar:
        for dest, error in pool.map(lambda job: (job[1], _fetch(*job, timeout, retries, max_bytes)), todo):
            results[dest] = error
            bar.update()
    return results


def _fetch(url: str, dest: Path, timeout: float, retries: int, max_bytes: int) -> str | None:
    if not url.lower().startswith(("http://", "https://")):
        return f"download refused: {url!r} is not an http(s) URL"
    part = dest.with_name(dest.name + ".part")
    error = None
    for _ in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
                length = response.headers.get("Content-Length")
                if length and int(length) > max_bytes:
                    return f"download refused: {length} bytes is over the {max_bytes:,}-byte cap"
                shutil.copyfileobj(_Capped(response, max_bytes), f)
                size = f.tell()
            if not size:
                return f"download of {url} was empty"
            os.replace(part, dest)
            return None
        except urllib.error.HTTPError as e:
            error = f"download failed: HTTP {e.code} for {url}"
            if e.code < 500:  # a client error will not change on retry
                break
        except (urllib.error.URLError, OSError, ValueError) as e:
            error = f"download failed: {getattr(e, 'reason', e)} for {url}"
        finally:
            part.unlink(missing_ok=True)
    return error


class _Capped:
    """A response wrapper that fails once more than `limit` bytes have been read."""

    def __init__(self, response, limit: int):
        self.response, self.left = response, limit

    def read(self, n: int = -1) -> bytes:
        data = self.response.read(n if n > 0 else 1 << 16)
        self.left -= len(data)
        if self.left < 0:
            raise OSError("file is over the size cap")
        return data
