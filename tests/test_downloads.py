"""animescene.downloads, offline: resumable verified downloads from a local server, safe archives, fetch."""

import contextlib
import hashlib
import http.server
import io
import re
import tarfile
import threading
import zipfile

import pytest
import torch

from animescene import downloads
from animescene.downloads import (
    RESOURCES,
    Archive,
    ChecksumError,
    DownloadError,
    RemoteFile,
    Resource,
    UnsafeArchiveError,
    download,
    fetch,
    safe_extract,
    verify_sha256,
)

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes) and records the ``Range`` header of every request."""

    honour_range = True

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if self.honour_range and match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest's output clean
        pass


class _IgnoresRange(_Files):
    honour_range = False


@contextlib.contextmanager
def _serve(handler):
    """A server on an ephemeral port of 127.0.0.1, in a thread, stopped on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.files, server.requests = {"/payload.bin": PAYLOAD}, []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server():
    with _serve(_Files) as srv:
        yield srv


@pytest.fixture
def server_without_range():
    with _serve(_IgnoresRange) as srv:
        yield srv


def _url(srv, path="/payload.bin"):
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh cache (``$ANIMESCENE_HOME``) for each test."""
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- download ---------------------------------------------------------------------------------------


def test_download_verifies_and_renames(server, tmp_path):
    dest = download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "out.bin.part").exists()


def test_download_resumes_a_truncated_partial_file_with_a_range_request(server, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(PAYLOAD[:30000])
    dest = download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/payload.bin", "bytes=30000-")]


def test_download_starts_over_when_the_server_ignores_range(server_without_range, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(b"x" * 30000)  # wrong bytes: appending would corrupt the file
    dest = download(_url(server_without_range), tmp_path / "out.bin", PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_download_of_a_complete_partial_file_finishes_without_data(server, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(PAYLOAD)  # the server answers 416
    assert download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False).read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_the_partial_file_and_names_both_hashes(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=f"expected {wrong}, got {PAYLOAD_SHA}"):
        download(_url(server), tmp_path / "out.bin", wrong, progress=False)
    assert not (tmp_path / "out.bin").exists() and not (tmp_path / "out.bin.part").exists()


def test_a_corrupt_partial_file_is_caught_and_downloaded_again_from_the_start(server, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(b"x" * 30000)
    assert download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False).read_bytes() == PAYLOAD
    assert server.requests == [("/payload.bin", "bytes=30000-"), ("/payload.bin", None)]


def test_http_error_is_a_download_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(_url(server, "/missing"), tmp_path / "out.bin", PAYLOAD_SHA, progress=False)


def test_verify_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert verify_sha256(path, PAYLOAD_SHA.upper()) == path
    with pytest.raises(ChecksumError, match="mismatch"):
        verify_sha256(path, "1" * 64)


# -- safe_extract -----------------------------------------------------------------------------------


def _zip(path, names):
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(zipfile.ZipInfo(name), b"data")
    return path


def _tar(path, members):
    """``members``: (name, type, linkname) triples; regular files hold ``b"data"``."""
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            data = b"data" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_safe_extract_unpacks_zip_and_tar(tmp_path):
    zipped = _zip(tmp_path / "a.zip", ["dir/", "dir/a.txt", "b.txt"])
    assert safe_extract(zipped, tmp_path / "z") == [tmp_path / "z/dir/a.txt", tmp_path / "z/b.txt"]
    members = [("d/a.txt", tarfile.REGTYPE, ""), ("d/link", tarfile.SYMTYPE, "a.txt")]
    tarred = _tar(tmp_path / "a.tar.gz", members)
    extracted = safe_extract(tarred, tmp_path / "t")
    assert [p.name for p in extracted] == ["a.txt", "link"]
    assert (tmp_path / "t" / "d" / "link").read_bytes() == b"data"


def test_safe_extract_takes_only_the_members_asked_for(tmp_path):
    zipped = _zip(tmp_path / "a.zip", ["a.txt", "b.txt"])
    assert safe_extract(zipped, tmp_path / "z", members=["b.txt"]) == [tmp_path / "z" / "b.txt"]
    with pytest.raises(KeyError, match="c.txt"):
        safe_extract(zipped, tmp_path / "z", members=["c.txt"])


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt"])
def test_safe_extract_refuses_zip_paths_that_escape(tmp_path, name):
    zipped = _zip(tmp_path / "bad.zip", ["fine.txt", name])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(zipped, tmp_path / "out")
    assert not (tmp_path / "out" / "fine.txt").exists()  # refused before anything is written
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_zip_symlinks(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(tmp_path / "link.zip", tmp_path / "out")


@pytest.mark.parametrize(
    "member",
    [
        ("../evil.txt", tarfile.REGTYPE, ""),
        ("/tmp/evil.txt", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("sub/link", tarfile.SYMTYPE, "../../outside"),
        ("hard", tarfile.LNKTYPE, "../outside"),
        ("dev", tarfile.CHRTYPE, ""),
        ("fifo", tarfile.FIFOTYPE, ""),
    ],
)
def test_safe_extract_refuses_tar_members_that_escape_or_are_devices(tmp_path, member):
    tarred = _tar(tmp_path / "bad.tar.gz", [("fine.txt", tarfile.REGTYPE, ""), member])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(tarred, tmp_path / "out")
    assert not (tmp_path / "out" / "fine.txt").exists()


def test_safe_extract_refuses_a_link_that_escapes_through_an_earlier_link(tmp_path):
    # "sub/link" -> ".." looks like it stays inside, but "sub" -> "." puts it in dest itself
    members = [("sub", tarfile.SYMTYPE, "."), ("sub/link", tarfile.SYMTYPE, "..")]
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        safe_extract(_tar(tmp_path / "sneaky.tar", members), tmp_path / "out")
    assert not (tmp_path / "out" / "link").is_symlink()


# -- the registry and fetch -------------------------------------------------------------------------


def test_registry_entries_are_well_formed():
    hex64 = re.compile(r"[0-9a-f]{64}")
    assert {"vgg16-hed", "whitebox-official", "kodak24"} <= set(RESOURCES)
    for name, resource in RESOURCES.items():
        assert resource.name == name and resource.description and resource.licence and resource.files
        assert resource.output.startswith(("weights/", "datasets/"))
        for file in resource.files:
            assert hex64.fullmatch(file.sha256), (name, file.filename)
            assert (file.url is None) != (file.archive is None), (name, file.filename)
            if file.url is not None:
                assert file.url.startswith("https://"), file.url
            else:
                assert hex64.fullmatch(file.archive.sha256)
                assert file.archive.pip or file.archive.url.startswith("https://")
    assert RESOURCES["vgg16-hed"].output == f"weights/{downloads.HED_WEIGHTS}"
    assert RESOURCES["whitebox-official"].output == f"weights/{downloads.WHITEBOX_WEIGHTS}"
    assert "NC" in RESOURCES["whitebox-official"].licence and RESOURCES["whitebox-official"].notice


def test_weights_dir_follows_animescene_home(home):
    assert downloads.weights_dir() == home / "weights"


def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def toy_resource(server, monkeypatch):
    """A registry entry served by the local server: one plain file and one file inside a zip."""
    archive = _zip_bytes({"pkg/inner.bin": PAYLOAD[:1000], "pkg/other.txt": b"not wanted"})
    server.files["/pack.zip"] = archive
    resource = Resource(
        name="toy",
        description="a test entry",
        licence="CC0",
        files=(
            RemoteFile("payload.bin", PAYLOAD_SHA, url=_url(server)),
            RemoteFile(
                "inner.bin",
                hashlib.sha256(PAYLOAD[:1000]).hexdigest(),
                archive=Archive(
                    "pack.zip", hashlib.sha256(archive).hexdigest(), "pkg/inner.bin", url=_url(server, "/pack.zip")
                ),
            ),
        ),
        output="datasets/toy",
    )
    monkeypatch.setitem(RESOURCES, "toy", resource)
    return resource


def test_fetch_downloads_verifies_and_is_idempotent(home, server, toy_resource):
    out = fetch("toy", progress=False)
    assert out == home / "datasets" / "toy"
    assert (out / "payload.bin").read_bytes() == PAYLOAD
    assert (out / "inner.bin").read_bytes() == PAYLOAD[:1000]
    assert "CC0" in (out / "SOURCE.txt").read_text() and not (out / "other.txt").exists()
    requests = len(server.requests)
    assert fetch("toy", progress=False) == out
    assert len(server.requests) == requests  # nothing downloaded again
    (out / "payload.bin").write_bytes(b"tampered")
    fetch("toy", progress=False)
    assert (out / "payload.bin").read_bytes() == PAYLOAD


def test_fetch_takes_a_local_source_folder_without_network(home, toy_resource, server, tmp_path):
    source = tmp_path / "offline"
    source.mkdir()
    (source / "payload.bin").write_bytes(PAYLOAD)
    (source / "pack.zip").write_bytes(server.files["/pack.zip"])
    server.requests.clear()
    out = fetch("toy", source=source, progress=False)
    assert (out / "inner.bin").read_bytes() == PAYLOAD[:1000] and server.requests == []


def test_fetch_rejects_a_source_with_the_wrong_checksum(home, toy_resource, tmp_path):
    (tmp_path / "payload.bin").write_bytes(b"something else")
    with pytest.raises(ChecksumError, match="does not hold payload.bin"):
        fetch("toy", source=tmp_path / "payload.bin", progress=False)


def test_fetch_offline_says_how_to_provide_the_file(home, monkeypatch):
    resource = Resource(
        name="unreachable",
        description="a test entry",
        licence="CC0",
        files=(RemoteFile("x.bin", PAYLOAD_SHA, url="http://127.0.0.1:9/x.bin"),),
        output="datasets/unreachable",
    )
    monkeypatch.setitem(RESOURCES, "unreachable", resource)
    with pytest.raises(DownloadError, match=r"python -m data_scripts.download unreachable --source PATH"):
        fetch("unreachable", progress=False)


def test_fetch_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="vgg16-hed"):
        fetch("no-such-thing")


def _shared_file(relative):
    from animescene.runtime import shared_data_dir

    shared = shared_data_dir()
    if shared is None or not (shared / relative).is_file():
        pytest.skip(f"the course's shared data has no {relative} here")
    return shared / relative


def test_fetch_vgg16_hed_converts_the_shared_h5(home):
    _shared_file("weights/hed_bsds500.weights.h5")
    pytest.importorskip("animescene.convert", reason="animescene.convert (the converters) is not written yet")
    out = fetch("vgg16-hed", progress=False)
    assert out == home / "weights" / downloads.HED_WEIGHTS
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    assert not (home / "downloads" / "vgg16-hed" / "hed_bsds500.weights.h5").exists()  # used in place
    assert fetch("vgg16-hed") == out


def test_fetch_kodak24_copies_the_shared_photos(home):
    _shared_file("photos/kodak24/kodim01.png")
    out = fetch("kodak24", progress=False)
    assert sorted(p.name for p in out.glob("*.png")) == [f"kodim{i:02d}.png" for i in range(1, 25)]


def test_fetch_whitebox_official_converts_the_shared_tflite_and_prints_the_licence(home, capsys):
    _shared_file("weights/whitebox_cartoon_gan_fp16.tflite")
    pytest.importorskip("animescene.convert", reason="animescene.convert (the converters) is not written yet")
    pytest.importorskip("ai_edge_litert", reason="reading .tflite files needs ai-edge-litert")
    out = fetch("whitebox-official", progress=False)
    assert out == home / "weights" / downloads.WHITEBOX_WEIGHTS
    assert "CC BY-NC-SA 4.0" in capsys.readouterr().err
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert sum(v.numel() for v in state.values()) == 1_467_075  # the course's parameter count
