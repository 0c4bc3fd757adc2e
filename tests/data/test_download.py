"""IXI download: resume, checksum, tar check and unpacking, against a local HTTP server on
127.0.0.1 serving a small tar of fake IXI volumes (real MR anatomy) built here."""
from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import w2amsn_plugin  # noqa: F401
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.download import DownloadError, download_file, download_ixi
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree


class _Handler(BaseHTTPRequestHandler):
    """GET with single-range support; faults injected through attributes of the server."""

    def do_GET(self):  # noqa: N802  (http.server's naming)
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in srv.drop_once:  # send half, then hang up
            srv.drop_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def ixi_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """IXI-T1.tar as IXI ships it: the .nii.gz files at the top level."""
    src = tmp_path_factory.mktemp("src")
    paths = make_fake_ixi_tree(src, 3, ("T1",), shape=(64, 72, 24))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in paths:
            tar.add(path, arcname=path.name)
    return buf.getvalue()


@pytest.fixture
def server(ixi_tar: bytes):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"/ixi/IXI-T1.tar": ixi_tar}
    srv.requests, srv.drop_once, srv.ignore_range = [], set(), False
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/ixi/"
    yield srv
    srv.shutdown()
    srv.server_close()


def _quiet(msg: str) -> None:
    pass


def test_download_ixi_unpacks_once(server, ixi_tar: bytes, tmp_path: Path):
    logs: list[str] = []
    files = download_ixi("T1", tmp_path, base_url=server.url, progress=False, log=logs.append)
    assert sorted(p.name for p in files) == [
        "IXI100-Guys-1000-T1.nii.gz", "IXI101-HH-1001-T1.nii.gz", "IXI102-IOP-1002-T1.nii.gz"]
    assert (tmp_path / "IXI-T1.tar").read_bytes() == ixi_tar
    assert any(hashlib.sha256(ixi_tar).hexdigest() in m for m in logs)  # sha256 reported
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*extracting"))
    n_requests = len(server.requests)
    assert download_ixi("T1", tmp_path, base_url=server.url, progress=False, log=_quiet) == []
    assert len(server.requests) == n_requests  # done before: nothing fetched again


def test_dropped_connection_resumes_with_range(server, ixi_tar: bytes, tmp_path: Path):
    server.drop_once.add("/ixi/IXI-T1.tar")
    dest = tmp_path / "IXI-T1.tar"
    digest = download_file(server.url + "IXI-T1.tar", dest, progress=False, retry_wait=0,
                           log=_quiet)
    assert dest.read_bytes() == ixi_tar and digest == hashlib.sha256(ixi_tar).hexdigest()
    assert [r[1] for r in server.requests] == [None, f"bytes={len(ixi_tar) // 2}-"]


def test_partial_file_of_an_earlier_run_is_resumed(server, ixi_tar: bytes, tmp_path: Path):
    dest = tmp_path / "IXI-T1.tar"
    (tmp_path / "IXI-T1.tar.part").write_bytes(ixi_tar[:1000])
    download_file(server.url + "IXI-T1.tar", dest, progress=False, log=_quiet)
    assert dest.read_bytes() == ixi_tar
    assert server.requests == [("/ixi/IXI-T1.tar", "bytes=1000-")]


def test_server_ignoring_range_restarts_cleanly(server, ixi_tar: bytes, tmp_path: Path):
    server.ignore_range = True
    (tmp_path / "IXI-T1.tar.part").write_bytes(b"x" * 1000)
    download_file(server.url + "IXI-T1.tar", tmp_path / "IXI-T1.tar", progress=False,
                  log=_quiet)
    assert (tmp_path / "IXI-T1.tar").read_bytes() == ixi_tar


def test_checksum_is_checked(server, ixi_tar: bytes, tmp_path: Path):
    dest = tmp_path / "IXI-T1.tar"
    with pytest.raises(DownloadError, match="SHA-256 mismatch .* the downloaded file was deleted"):
        download_file(server.url + "IXI-T1.tar", dest, sha256="0" * 64, progress=False,
                      log=_quiet)
    assert not dest.exists() and not (tmp_path / "IXI-T1.tar.part").exists()
    good = hashlib.sha256(ixi_tar).hexdigest().upper()
    assert download_file(server.url + "IXI-T1.tar", dest, sha256=good, progress=False,
                         log=_quiet) == good.lower()


def test_truncated_tar_and_missing_file_are_reported(server, ixi_tar: bytes, tmp_path: Path):
    server.files["/ixi/IXI-T2.tar"] = ixi_tar[:512 + 700]  # cut inside the first member
    with pytest.raises(DownloadError, match=r"IXI-T2\.tar: damaged or truncated tar"):
        download_ixi("T2", tmp_path, base_url=server.url, progress=False, log=_quiet)
    assert not list(tmp_path.rglob("*.nii.gz"))  # nothing half-unpacked
    assert not (tmp_path / ".IXI-T2.tar.extracted").exists()
    with pytest.raises(DownloadError, match=r"IXI-PD\.tar: HTTP 404"):
        download_ixi("PD", tmp_path, base_url=server.url, progress=False, log=_quiet)


def test_make_ixi_lmdb_with_download(server, tmp_path: Path, capsys):
    args = ["prepare-ixi",
        "--download", "--ixi-url", server.url, "--ixi-root", str(tmp_path / "ixi"),
        "--modality", "T1", "--out", str(tmp_path / "out"), "--n-train", "2", "--n-test", "1",
        "--n-val", "0", "--scales", "2", "--crop", "48", "48", "4", "--workers", "1",
        "--no-progress"]
    assert w2amsn_main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "IXI_T1_train_LR_bicubic_X2.lmdb" / "meta_info.txt").is_file()
    assert (tmp_path / "ixi" / "IXI-T1.tar").is_file()
