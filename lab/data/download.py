"""A bounded, parallel, resumable downloader for poster URLs.

Bounded: a fixed number of threads, a timeout per request and a size cap per file. Resumable: a
file is written as `.part` and renamed when complete, so a rerun skips what is done and redoes
only what was cut off. Guarded: only http(s), and never to a loopback, private, link-local or
other non-public address (a CSV from elsewhere must not make the lab reach into the user's own
network or a cloud metadata service), neither directly nor through a redirect, unless allowed.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

MAX_BYTES = 20 * 1024 * 1024


def download_all(jobs: list[tuple[str, Path]], *, workers: int = 8, timeout: float = 20, retries: int = 2,
                 max_bytes: int = MAX_BYTES, progress: bool = True, allow_private: bool = False
                 ) -> dict[Path, str | None]:
    """Fetch each (url, destination); returns destination -> None, or why it failed or was refused."""
    todo = [(url, Path(dest)) for url, dest in jobs if not Path(dest).exists()]
    results: dict[Path, str | None] = {Path(dest): None for _, dest in jobs}
    opener = urllib.request.build_opener(_CheckedRedirects(allow_private))

    def fetch(job):
        return job[1], _fetch(opener, *job, timeout, retries, max_bytes, allow_private)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(todo), desc="downloading posters", unit="poster", disable=not progress) as bar:
        for dest, error in pool.map(fetch, todo):
            results[dest] = error
            bar.update()
    return results


def refusal(url: str, allow_private: bool = False) -> str | None:
    """Why `url` is not fetched (None: it may be): not http(s), no host, or a host that resolves to an
    address outside the public internet."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return f"download refused: {url!r} is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return f"download refused: {url!r} is not an http(s) URL"
    if not parts.hostname:
        return f"download refused: {url!r} names no host"
    if allow_private:
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port or 80, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError) as e:
        return f"download failed: cannot resolve {parts.hostname} ({e})"
    for address in sorted(addresses):
        ip = ipaddress.ip_address(address.split("%")[0])
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if not ip.is_global:
            return (f"download refused: {parts.hostname} is {ip}, a loopback, private or link-local address "
                    "(--allow-private-urls fetches from your own network)")
    return None


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL that may be fetched itself."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        why = refusal(newurl, self.allow_private)
        if why:
            raise _Refused(f"{why} (a redirect from {req.full_url})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Refused(urllib.error.URLError):
    """A redirect to a URL that may not be fetched; not worth a retry."""


def _fetch(opener, url: str, dest: Path, timeout: float, retries: int, max_bytes: int,
           allow_private: bool) -> str | None:
    why = refusal(url, allow_private)
    if why:
        return why
    part = dest.with_name(dest.name + ".part")
    error = None
    for _ in range(retries + 1):
        try:
            with opener.open(url, timeout=timeout) as response, open(part, "wb") as f:
                length = response.headers.get("Content-Length")
                if length and int(length) > max_bytes:
                    return f"download refused: {length} bytes is over the {max_bytes:,}-byte cap"
                shutil.copyfileobj(_Capped(response, max_bytes), f)
                size = f.tell()
            if not size:
                return f"download of {url} was empty"
            os.replace(part, dest)
            return None
        except _Refused as e:
            return str(e.reason)
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
