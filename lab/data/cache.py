"""Every poster decoded once into a uint8 array on disk, memory-mapped and shared by all runs.

The cache is keyed by a fingerprint of the dataset (metadata.csv and every image's size and
mtime) and the image size, so it is rebuilt when either changes. Two runs that build it at once
serialise on a lock file; the array and its index appear only when complete (atomic rename).
Before every use the array's header and size are checked against the dataset: a truncated or
foreign array is rebuilt, not trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from lab.checkpoint import sync_folder
from lab.data.images import decode_many
from lab.data.metadata import PosterTable
from lab.errors import LabError

log = logging.getLogger(__name__)
LOCK_TIMEOUT = 30 * 60  # seconds a process waits for another's cache build


@dataclass
class ImageCache:
    images: np.ndarray  # (N, H, W, 3) uint8, memory-mapped; row i is poster i of the table
    bad: dict[str, str]  # imdb_id -> why its image could not be decoded
    path: Path

    def good_mask(self, table: PosterTable) -> np.ndarray:
        return ~table.posters["imdb_id"].isin(self.bad.keys()).to_numpy()


def cache_root() -> Path:
    if os.environ.get("LAB_CACHE"):
        return Path(os.environ["LAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lab"


def dataset_fingerprint(table: PosterTable) -> str:
    """The dataset's metadata and each image's name (relative to the dataset, so that a relative and an absolute
    path to it find the same cache), size and time."""
    h = hashlib.sha256((table.root / "metadata.csv").read_bytes())
    for path in table.posters["path"]:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, table.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load_image_cache(table: PosterTable, size: tuple[int, int], *, workers: int | None = None,
                     progress: bool = True, fingerprint: str | None = None) -> ImageCache:
    """The cache for `table` at `size` (W, H), built on first use."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"cannot create the image cache folder {root} ({e}); set LAB_CACHE") from None
    fingerprint = fingerprint or dataset_fingerprint(table)
    base = root / f"posters-{fingerprint[:20]}-{size[0]}x{size[1]}"
    array, index = base.with_suffix(".npy"), base.with_suffix(".json")
    with _build_lock(base.with_suffix(".lock")):
        _remove_partial_writes(base)
        problem = _damage(array, index, len(table), size) if index.exists() else None
        if problem:
            log.warning("image cache %s is damaged (%s); building it again", array, problem)
        if problem or not index.exists():
            _build(table, size, array, index, workers, progress)
    bad = json.loads(index.read_text())["bad"]
    return ImageCache(np.load(array, mmap_mode="r"), bad, array)


@contextlib.contextmanager
def _build_lock(path: Path):
    """The cache's build lock: a process that finds it held says so and waits, up to LOCK_TIMEOUT."""
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process building the image cache (%s), up to %d minutes",
                    path.with_suffix(".npy").name, LOCK_TIMEOUT // 60)
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except Timeout:
            raise LabError(f"another process has been building the image cache {path.with_suffix('.npy')} for "
                           f"{LOCK_TIMEOUT // 60} minutes; if none is running, delete {path}") from None
    try:
        yield
    finally:
        lock.release()


def _remove_partial_writes(base: Path) -> None:
    """A build killed mid-way leaves its temporary files; under the lock no other build is running."""
    for tmp in base.parent.glob(f"{base.name}.*.tmp*"):
        tmp.unlink(missing_ok=True)


def _damage(array: Path, index: Path, n: int, size: tuple[int, int]) -> str | None:
    """Why the cache's files cannot be trusted (None: they can): checked before every use, so that a
    truncated or foreign array is rebuilt instead of feeding wrong pixels."""
    try:
        meta = json.loads(index.read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("bad"), dict):
            return f"{index.name} is not a cache index"
        with open(array, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            data_start = f.tell()
    except (OSError, ValueError) as e:  # missing, torn, or not an .npy file
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    expected = (n, size[1], size[0], 3)
    if tuple(shape) != expected or dtype != np.uint8 or fortran:
        return f"holds {dtype} {'x'.join(map(str, shape))}, not uint8 {'x'.join(map(str, expected))}"
    if array.stat().st_size != data_start + int(np.prod(expected)):
        return f"{array.stat().st_size:,} bytes, not {data_start + int(np.prod(expected)):,}: truncated"
    return None


def _build(table: PosterTable, size, array: Path, index: Path, workers, progress) -> None:
    paths = list(table.posters["path"])
    tmp_array = array.with_name(array.name + f".tmp{os.getpid()}")
    tmp_index = index.with_name(index.name + f".tmp{os.getpid()}")
    out = np.lib.format.open_memmap(tmp_array, mode="w+", dtype=np.uint8,
                                    shape=(len(paths), size[1], size[0], 3))
    bad = {}
    try:
        for start, pixels, errors in decode_many(paths, size, workers=workers, progress=progress):
            out[start:start + len(pixels)] = pixels
            bad.update({table.posters["imdb_id"].iat[i]: reason for i, reason in errors.items()})
        out.flush()
        del out
        tmp_index.write_text(json.dumps({"size": list(size), "n": len(paths), "bad": bad}))
        os.replace(tmp_array, array)
        os.replace(tmp_index, index)  # the index last: its presence means the cache is complete
        sync_folder(index.parent)
    finally:
        for tmp in (tmp_array, tmp_index):
            tmp.unlink(missing_ok=True)

