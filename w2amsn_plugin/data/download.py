"""Download and unpack IXI's public tarballs (``IXI-T1.tar``, ``IXI-T2.tar``, ``IXI-PD.tar``).

Downloads resume: data goes to ``<file>.part``, and a rerun or a retry after a dropped connection
asks the server for the rest with an HTTP ``Range`` request. A download is complete when its size
equals the server's ``Content-Length``/``Content-Range`` total; IXI publishes no checksums, so the
SHA-256 is printed (and checked when the caller passes the expected value with ``sha256=``).
Every tar member is read while unpacking, so a truncated or damaged tar is reported rather than
half-unpacked: members go to a temporary folder and are moved into place only when all were read.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..results.files import sha256_file

__all__ = ["IXI_BASE_URL", "DownloadError", "download_file", "extract_tar", "download_ixi"]

#: IXI's public download folder (https://brain-development.org/ixi-dataset/)
IXI_BASE_URL = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download or unpacking failed; ``str(err)`` is one line naming the URL or file."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None,
                  progress: bool = True, retries: int = 3, timeout: float = 60.0,
                  retry_wait: float = 2.0, log: Callable[[str], None] = _stderr) -> str:
    """Download ``url`` to ``dest`` with resume and retries; return the file's SHA-256.

    After the n-th failure in a row (without new data) it waits ``retry_wait * 2**(n-1)``
    seconds and resumes.
    Raises :class:`DownloadError` when the server fails repeatedly, the size is wrong, or the
    checksum differs from ``sha256`` (the bad file is then deleted).
    """
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset
                                         else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                total = _expected_total(resp, offset, url)
                if resp.status == 200 and offset:  # server ignored Range: start again
                    offset = 0
                with open(part, "ab" if offset else "wb") as fout, tqdm(
                        total=total, initial=offset, unit="B", unit_scale=True,
                        unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
                    for block in iter(lambda: resp.read(_CHUNK), b""):
                        fout.write(block)
                        bar.update(len(block))
        except urllib.error.HTTPError as err:
            failures = _progress_made(part, offset, failures)
            if err.code == 416 and offset:  # nothing left to send, or a stale .part: start again
                part.unlink()
            elif err.code < 500:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
            failures = _retry_or_raise(url, f"HTTP {err.code}", failures, retries, retry_wait,
                                       log)
            continue
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout,
                ConnectionError) as err:
            failures = _progress_made(part, offset, failures)
            failures = _retry_or_raise(url, _reason(err), failures, retries, retry_wait, log)
            continue
        size = part.stat().st_size
        if total is not None and size < total:
            failures = _progress_made(part, offset, failures)
            failures = _retry_or_raise(url, f"connection closed at {size} of {total} bytes",
                                       failures, retries, retry_wait, log)
            continue
        if total is not None and size > total:
            part.unlink()
            raise DownloadError(f"{url}: received {size} bytes, more than the announced {total}")
        if total is None:
            log(f"warning: {url}: the server sent no size; completeness relies on the checksum "
                "and the tar check")
        break
    digest = sha256_file(part)
    if sha256 is not None and digest.lower() != sha256.lower():
        part.unlink()
        raise DownloadError(f"{url}: SHA-256 mismatch (got {digest}, expected {sha256.lower()}); "
                            "the downloaded file was deleted")
    os.replace(part, dest)
    log(f"downloaded {dest} ({dest.stat().st_size} bytes, sha256 {digest})")
    return digest


def _expected_total(resp, offset: int, url: str) -> int | None:
    """Full file size announced by the server (None when it does not say)."""
    if resp.status == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)",
                             resp.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != offset:
            raise DownloadError(f"{url}: bad Content-Range "
                                f"{resp.headers.get('Content-Range')!r} for a resume at {offset}")
        return None if match[3] == "*" else int(match[3])
    length = resp.headers.get("Content-Length")
    return int(length) if length is not None else None


def _progress_made(part: Path, offset: int, failures: int) -> int:
    """Failures in a row: reset to 0 when the last attempt added data to ``part``."""
    return 0 if part.exists() and part.stat().st_size > offset else failures


def _retry_or_raise(url: str, reason: str, failures: int, retries: int, retry_wait: float,
                    log: Callable[[str], None]) -> int:
    failures += 1
    if failures > retries:
        raise DownloadError(f"{url}: download failed after {retries} retries ({reason}); "
                            "rerun to resume")
    log(f"warning: {url}: {reason}; retrying ({failures}/{retries})")
    time.sleep(retry_wait * 2 ** (failures - 1))
    return failures


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    return " ".join(str(reason).split()) or type(err).__name__


def extract_tar(tar_path: str | os.PathLike, dest_dir: str | os.PathLike) -> list[Path]:
    """Unpack every member of ``tar_path`` into ``dest_dir``; return the unpacked paths.

    Members are read completely into a temporary folder first (``tarfile``'s ``data`` filter:
    no absolute paths, links out of the folder or device files) and moved into place only
    when the whole archive was read. Raises :class:`DownloadError` for a damaged archive.
    """
    tar_path, dest_dir = Path(tar_path), Path(dest_dir)
    tmp = dest_dir / f".{tar_path.name}.extracting"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"{tar_path}: damaged or truncated tar ({_reason(err)})") from None
    moved = []
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        target = dest_dir / path.relative_to(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(target)
    shutil.rmtree(tmp)
    return moved


def download_ixi(modality: str, ixi_root: str | os.PathLike, base_url: str = IXI_BASE_URL,
                 sha256: str | None = None, progress: bool = True, retries: int = 3,
                 retry_wait: float = 2.0, log: Callable[[str], None] = _stderr) -> list[Path]:
    """Download ``IXI-<modality>.tar`` into ``ixi_root`` and unpack it there.

    A finished step is not redone: the tarball is kept, and a marker file
    ``.IXI-<MOD>.tar.extracted`` records the unpacking. Returns the unpacked files (empty when
    the marker says it was done before).
    """
    ixi_root = Path(ixi_root)
    name = f"IXI-{modality}.tar"
    tar_path, marker = ixi_root / name, ixi_root / f".{name}.extracted"
    if marker.is_file():
        log(f"{tar_path}: already downloaded and unpacked ({marker.name} exists)")
        return []
    if not tar_path.is_file():
        download_file(base_url.rstrip("/") + "/" + name, tar_path, sha256=sha256,
                      progress=progress, retries=retries, retry_wait=retry_wait, log=log)
    elif sha256 is not None:
        digest = sha256_file(tar_path)
        if digest != sha256.lower():
            raise DownloadError(f"{tar_path}: SHA-256 mismatch (got {digest}, expected "
                                f"{sha256.lower()}); delete it to download again")
    files = extract_tar(tar_path, ixi_root)
    marker.write_text(f"{len(files)} files\n")
    log(f"unpacked {len(files)} files from {tar_path} into {ixi_root}")
    return files
