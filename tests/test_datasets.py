"""experiments.datasets: tfds' prepared CIFAR-10, torchvision's CIFAR-10 files, the offline digits, and the choice.

No network: CIFAR-10 in each layout is written by the tests, tiny, in exactly its real format. An optional test
reads the real CIFAR-10 when ``JAXLOSS_CIFAR10_DIR`` names it (skipped otherwise).
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib

import numpy as np
import pytest

from experiments import datasets
from experiments.datasets import (
    CIFAR10_DIR_ENV,
    DamagedFileError,
    DatasetArgumentError,
    DatasetFileError,
    DatasetNotFoundError,
    ImageDataset,
    MissingPackageError,
    UnsafePickleError,
    load_cifar10_tfds,
    load_cifar10_torchvision,
    load_dataset,
    load_digits_32x32,
)
from experiments.errors import RunError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_SIZES = (3, 2, 4, 1, 2)  # images in data_batch_1 ... data_batch_5
TEST_SIZE = 3


# --- torchvision's files, written as CIFAR-10's pickles ---------------------------------------------------------


@dataclasses.dataclass
class TorchvisionFiles:
    """What the tiny files hold: per batch file, its (n, 3072) data rows and labels."""

    root: os.PathLike  # holds cifar-10-batches-py/
    batches: dict  # file name -> (data, labels)


def python2_pickle(value) -> bytes:
    """`value` pickled as Python 2's cPickle wrote CIFAR-10's files (protocol 2).

    Python 3 cannot write that: Python 2 str (keys, label names, and a numpy array's bytes) are SHORT_BINSTRING or
    BINSTRING, and arrays name ``numpy.core.multiarray._reconstruct``. Handles what CIFAR-10's files hold: dicts,
    lists, str, ints and 2-D uint8 arrays. Checked on CIFAR-10's own files: for their contents it writes their
    bytes, but for the memo opcodes (equal after `pickletools.optimize`).
    """
    return b"\x80\x02" + _python2_opcodes(value) + b"."


def _python2_str(raw: bytes) -> bytes:
    return b"U" + bytes([len(raw)]) + raw if len(raw) < 256 else b"T" + struct.pack("<I", len(raw)) + raw


def _python2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + struct.pack("<B", value)
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _python2_opcodes(value) -> bytes:
    if isinstance(value, dict):
        return b"}(" + b"".join(_python2_opcodes(k) + _python2_opcodes(v) for k, v in value.items()) + b"u"
    if isinstance(value, list):  # appended in chunks of 1000 items, as cPickle does
        return b"]" + b"".join(
            b"(" + b"".join(map(_python2_opcodes, value[i : i + 1000])) + b"e" for i in range(0, len(value), 1000)
        )
    if isinstance(value, str):
        return _python2_str(value.encode("latin1"))
    if isinstance(value, int):
        return _python2_int(value)
    assert isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 2
    shape = b"".join(map(_python2_int, value.shape)) + b"\x86"  # TUPLE2
    # numpy.dtype('u1', 0, 1), then its state (3, '|', None, None, None, -1, -1, 0)
    dtype = (
        b"cnumpy\ndtype\n"
        + _python2_str(b"u1")
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + _python2_str(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    # _reconstruct(ndarray, (0,), 'b'), then its state (1, shape, dtype, Fortran order False, data)
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + _python2_str(b"b")
        + b"\x87R"
        + b"(K\x01"
        + shape
        + dtype
        + b"\x89"
        + _python2_str(value.tobytes())
        + b"tb"
    )


PICKLE_FORMATS = {
    "python2": python2_pickle,  # CIFAR-10's own files
    "python3_str_keys": lambda value: pickle.dumps(value, protocol=2),  # re-pickled as torchvision reads them
    "python3_bytes_keys": lambda value: pickle.dumps(_bytes_keys(value)),  # re-pickled from encoding='bytes'
}


def _bytes_keys(entry: dict) -> dict:
    """`entry` as ``pickle.load(file, encoding='bytes')`` reads CIFAR-10's files (CIFAR-10's web page does)."""
    return {
        key.encode(): [name.encode() for name in value] if key == "label_names" else value
        for key, value in entry.items()
    }


def write_torchvision_files(root, *, pickle_format: str = "python2", seed: int = 0) -> TorchvisionFiles:
    """Writes data_batch_1..5, test_batch and batches.meta into `root`/cifar-10-batches-py.

    As CIFAR-10's own files: pickled dicts; 'data' is an (n, 3072) uint8 array whose rows are the red, green
    and blue 32x32 planes, each row-major, and 'labels' a list of ints; 'label_names' in batches.meta.
    """
    dump = PICKLE_FORMATS[pickle_format]
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    sizes = dict(zip([f"data_batch_{i}" for i in range(1, 6)], TRAIN_SIZES, strict=True)) | {"test_batch": TEST_SIZE}
    batches = {}
    for name, size in sizes.items():
        data = rng.integers(0, 256, (size, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size).tolist()
        batches[name] = (data, labels)
        entry = {
            "batch_label": f"{name} of a test",
            "labels": labels,
            "data": data,
            "filenames": [f"{name}_{i}.png" for i in range(size)],
        }
        (folder / name).write_bytes(dump(entry))
    meta = {"num_cases_per_batch": 10000, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(dump(meta))
    return TorchvisionFiles(root, batches)


def write_archive(files: TorchvisionFiles, archive) -> None:
    """cifar-10-python.tar.gz of the files, with the official archive's member names."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(files.root / "cifar-10-batches-py", arcname="cifar-10-batches-py")


def expected_images(data: np.ndarray) -> np.ndarray:
    """torchvision's conversion, as in torchvision/datasets/cifar.py:
    ``np.vstack(data).reshape(-1, 3, 32, 32)`` then ``.transpose((0, 2, 3, 1))  # convert to HWC``."""
    return data.reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))


def check_torchvision_dataset(dataset: ImageDataset, files: TorchvisionFiles) -> None:
    train = [files.batches[f"data_batch_{i}"] for i in range(1, 6)]
    test_data, test_labels = files.batches["test_batch"]
    assert dataset.name == "cifar10" and dataset.class_names == CIFAR10_CLASSES
    assert dataset.train_images.shape == (sum(TRAIN_SIZES), 32, 32, 3) and dataset.train_images.dtype == np.uint8
    assert dataset.train_labels.dtype == np.int32 and dataset.test_labels.dtype == np.int32
    np.testing.assert_array_equal(dataset.train_images, expected_images(np.vstack([d for d, _ in train])))
    np.testing.assert_array_equal(dataset.train_labels, sum((labels for _, labels in train), []))
    np.testing.assert_array_equal(dataset.test_images, expected_images(test_data))
    np.testing.assert_array_equal(dataset.test_labels, test_labels)
    # The same, pixel by pixel from the format's definition: value (row y, column x) of colour plane c of image k
    # is data[k, 1024 * c + 32 * y + x].
    data = np.vstack([d for d, _ in train])
    for k, y, x, c in [
        (0, 0, 0, 0),
        (0, 0, 1, 0),
        (0, 1, 0, 0),
        (0, 0, 0, 1),
        (0, 0, 0, 2),
        (5, 17, 3, 2),
        (11, 31, 31, 2),
        (7, 30, 2, 1),
    ]:
        assert dataset.train_images[k, y, x, c] == data[k, 1024 * c + 32 * y + x]


@pytest.mark.parametrize("pickle_format", PICKLE_FORMATS)
def test_torchvision_folder(tmp_path, pickle_format):
    files = write_torchvision_files(tmp_path, pickle_format=pickle_format)
    check_torchvision_dataset(load_cifar10_torchvision(tmp_path / "cifar-10-batches-py"), files)
    check_torchvision_dataset(load_cifar10_torchvision(tmp_path), files)  # torchvision's root
    assert str(tmp_path) in load_cifar10_torchvision(str(tmp_path)).description


def test_python2_pickle_reads_as_torchvision_reads_it(tmp_path):
    """The test's Python 2 pickles read back with torchvision's own call, ``pickle.load(f, encoding="latin1")``."""
    data = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    entry = pickle.loads(
        python2_pickle({"data": data, "labels": [1, 300, 70000], "batch_label": "x" * 300}), encoding="latin1"
    )
    np.testing.assert_array_equal(entry["data"], data)
    assert entry["labels"] == [1, 300, 70000] and entry["batch_label"] == "x" * 300


def test_torchvision_archive(tmp_path):
    files = write_torchvision_files(tmp_path / "files")
    archive = tmp_path / "downloads" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    write_archive(files, archive)
    check_torchvision_dataset(load_cifar10_torchvision(archive), files)
    check_torchvision_dataset(load_cifar10_torchvision(archive.parent), files)  # the folder holding it


def _rewrite(path, change) -> None:
    with open(path, "rb") as file:
        entry = pickle.load(file, encoding="latin1")
    change(entry)
    with open(path, "wb") as file:
        pickle.dump(entry, file, protocol=2)


class _RunsCode:
    def __reduce__(self):
        return (os.getpid, ())


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda folder: (folder / "data_batch_3").unlink(), DatasetNotFoundError, "data_batch_3 is missing"),
        (
            lambda folder: _rewrite(folder / "data_batch_2", lambda e: e.pop("data")),
            DatasetFileError,
            "data_batch_2 has no 'data'",
        ),
        (
            lambda folder: _rewrite(folder / "test_batch", lambda e: e.update(data=e["data"][:, :3000])),
            DatasetFileError,
            "test_batch's 'data' must be a uint8 array of shape (n, 3072); got uint8 (3, 3000)",
        ),
        (
            lambda folder: _rewrite(folder / "test_batch", lambda e: e.update(data=e["data"].astype(np.int64))),
            DatasetFileError,
            "test_batch's 'data' must be a uint8 array",
        ),
        (
            lambda folder: _rewrite(folder / "data_batch_1", lambda e: e.update(labels=e["labels"][:-1])),
            DatasetFileError,
            "data_batch_1's 'labels' must be 3 integers",
        ),
        (
            lambda folder: _rewrite(folder / "data_batch_4", lambda e: e.update(labels=[10])),
            DatasetFileError,
            "data_batch_4's 'labels' must be in [0, 10)",
        ),
        (
            lambda folder: _rewrite(folder / "batches.meta", lambda e: e.pop("label_names")),
            DatasetFileError,
            "batches.meta has no 'label_names'",
        ),
        (
            lambda folder: (folder / "data_batch_5").write_bytes(pickle.dumps([1, 2])),
            DatasetFileError,
            "must hold a dict",
        ),
        (
            lambda folder: (folder / "data_batch_5").write_bytes(pickle.dumps({"data": _RunsCode()})),
            UnsafePickleError,
            "posix.getpid is not allowed",
        ),
    ],
    ids=[
        "missing_file",
        "missing_key",
        "wrong_shape",
        "wrong_dtype",
        "too_few_labels",
        "label_out_of_range",
        "no_label_names",
        "not_a_dict",
        "code",
    ],
)
def test_torchvision_bad_files(tmp_path, damage, error, message):
    write_torchvision_files(tmp_path)
    damage(tmp_path / "cifar-10-batches-py")
    with pytest.raises(error, match=re.escape(message)):
        load_cifar10_torchvision(tmp_path)


def test_error_classes_keep_their_built_in_bases():
    """Callers that catch the built-in errors the loaders raised before still catch them; main.py catches RunError."""
    for error, built_in in [
        (DatasetNotFoundError, FileNotFoundError),
        (DatasetFileError, ValueError),
        (DamagedFileError, ValueError),
        (UnsafePickleError, pickle.UnpicklingError),
        (UnsafePickleError, ValueError),
        (MissingPackageError, ImportError),
        (DatasetArgumentError, ValueError),
    ]:
        assert issubclass(error, RunError) and issubclass(error, built_in), error


# CIFAR-10's download page lists the archive; torchvision's CIFAR10 downloads it again when its md5 is wrong.
DOWNLOAD_AGAIN = "Download CIFAR-10 again (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: b"", "is truncated, damaged or not a pickle (Ran out of input)"),
        (lambda data: data[: len(data) // 2], "is truncated, damaged or not a pickle (pickle data was truncated)"),
        (lambda data: data[:-1], "is truncated, damaged or not a pickle (Ran out of input)"),  # no STOP opcode
        # A web server's error page saved in the file's place.
        (
            lambda data: b"<html><body>404 Not Found</body></html>",
            "is truncated, damaged or not a pickle (invalid load key, '<'",
        ),
    ],
    ids=["empty", "half", "last_byte_missing", "not_a_pickle"],
)
def test_torchvision_damaged_pickle(tmp_path, damage, message):
    """A truncated or empty batch file (an interrupted copy or extraction) is an error naming it."""
    write_torchvision_files(tmp_path)
    file = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    file.write_bytes(damage(file.read_bytes()))
    with pytest.raises(DamagedFileError, match=re.escape(f"load_cifar10_torchvision: {file} {message}")) as error:
        load_cifar10_torchvision(tmp_path)
    assert DOWNLOAD_AGAIN in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(DamagedFileError, match=re.escape(f"{file} {message}")):
        load_dataset("auto", cifar10_dir=tmp_path)  # never falls back to the digits


def _with_crc(data: bytes, crc: int) -> bytes:
    """A gzip file's bytes with the CRC-32 of its trailer (its last 8 bytes: CRC-32, then the size) replaced."""
    return data[:-8] + struct.pack("<I", crc) + data[-4:]


@pytest.mark.parametrize(
    "damage, message",
    [
        # Cut in the middle of a batch file's bytes: gzip's stream ends early.
        (
            lambda data: data[: len(data) // 2],
            "is truncated or damaged (Compressed file ended before the end-of-stream",
        ),
        # Only gzip's trailer is missing: every tar member is complete, so tarfile alone would not notice.
        (lambda data: data[:-8], "is truncated or damaged (Compressed file ended before the end-of-stream"),
        # A wrong CRC-32 in the trailer: the stream decompresses, but not into what was compressed.
        (lambda data: _with_crc(data, ~struct.unpack("<I", data[-8:-4])[0] & 0xFFFFFFFF), "CRC check failed"),
        # No tar in the gzip: no way of opening it works.
        (lambda data: gzip.compress(b"not a tar archive" * 100), "is not a readable tar archive (plain or compressed)"),
    ],
    ids=["truncated", "trailer_missing", "bad_crc", "no_tar_inside"],
)
def test_torchvision_damaged_archive(tmp_path, damage, message):
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_archive(write_torchvision_files(tmp_path / "files"), archive)
    data = archive.read_bytes()
    assert gzip.decompress(data) and struct.unpack("<I", data[-8:-4])[0] == zlib.crc32(gzip.decompress(data))
    archive.write_bytes(damage(data))
    with pytest.raises(DamagedFileError, match=re.escape(message)) as error:
        load_cifar10_torchvision(tmp_path)
    assert str(error.value).startswith(f"load_cifar10_torchvision: {archive}")
    assert str(error.value).endswith("after deleting the damaged copy).")


@pytest.mark.parametrize("compression", ["gz", "none"])
def test_torchvision_archive_md5(tmp_path, monkeypatch, compression):
    """An archive of the official size must have the official md5; one of another size is a repacked one.

    The official archive (170 MB) is stood in for by a small one: the official size and md5 are set to its.
    Uncompressed, tarfile reads it only after seeking back from its tries of gzip, bzip2 and xz: the md5 must
    still cover each byte once.
    """
    files = write_torchvision_files(tmp_path / "files")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz" if compression == "gz" else "w") as tar:
        tar.add(files.root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    data = archive.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    monkeypatch.setattr(datasets, "_OFFICIAL_ARCHIVE_SIZE", len(data))
    monkeypatch.setattr(datasets, "_OFFICIAL_ARCHIVE_MD5", md5)
    check_torchvision_dataset(load_cifar10_torchvision(archive), files)

    monkeypatch.setattr(datasets, "_OFFICIAL_ARCHIVE_MD5", "0" * 32)
    message = f"{archive} has the official archive's size but not its md5 ({md5} instead of {'0' * 32})"
    with pytest.raises(DamagedFileError, match=re.escape(message)):
        load_cifar10_torchvision(archive)

    monkeypatch.setattr(datasets, "_OFFICIAL_ARCHIVE_SIZE", len(data) + 1)  # a repacked archive: not hashed
    check_torchvision_dataset(load_cifar10_torchvision(archive), files)


def test_torchvision_bad_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_cifar10_torchvision(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="holds neither CIFAR-10's batch files nor cifar-10-batches-py/"):
        load_cifar10_torchvision(tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tar archive")
    with pytest.raises(DamagedFileError, match="is not a readable tar archive"):
        load_cifar10_torchvision(tmp_path)
    files = write_torchvision_files(tmp_path / "files")
    (files.root / "cifar-10-batches-py" / "test_batch").unlink()
    write_archive(files, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DatasetNotFoundError, match="lacks cifar-10-batches-py/test_batch"):
        load_cifar10_torchvision(tmp_path / "cifar-10-python.tar.gz")


# --- tensorflow-datasets' prepared CIFAR-10 --------------------------------------------------------------------

TFDS_TRAIN_SIZE, TFDS_TEST_SIZE = 12, 5


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _tfds_examples(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct random images and labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size)


@pytest.fixture(scope="module")
def tfds_data_dir(tmp_path_factory):
    """A tfds data directory holding a tiny CIFAR-10 prepared by tfds itself, as `tfds build` writes it.

    tfds' own `Cifar10` builder writes it (dataset_info.json, features.json and array_record shards of
    PNG-encoded tf.Examples), with its download replaced by the examples above. Writing needs no TensorFlow
    when the images come PNG-encoded.

    `tfds.testing.mock_data` does not serve here (tfds 4.9.10): its mocked data source's batched read
    `__getitems__` fails (`_getitems() missing 1 required positional argument`: the function is set on the
    mock without being bound to it), and under its default policy no dataset counts as prepared. A real
    prepared copy also tests the real reading and PNG decoding.
    """
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.image_classification.cifar import Cifar10

    splits = {"train": _tfds_examples(TFDS_TRAIN_SIZE, 1), "test": _tfds_examples(TFDS_TEST_SIZE, 2)}

    class TinyCifar10(Cifar10, skip_registration=True):
        name = "cifar10"
        code_path = None  # where tfds looks for download checksums; the lookup needs importlib_resources

        def _split_generators(self, dl_manager):
            self.info.features["label"].names = list(CIFAR10_CLASSES)
            return {split: self._examples(*arrays) for split, arrays in splits.items()}

        def _examples(self, images, labels):
            for index, (image, label) in enumerate(zip(images, labels, strict=True)):
                yield index, {"id": str(index), "image": _png(image), "label": int(label)}

    data_dir = tmp_path_factory.mktemp("tfds")
    TinyCifar10(data_dir=data_dir, file_format="array_record").download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            try_download_gcs=False,  # no network
            compute_stats=tfds.download.ComputeStatsMode.SKIP,
        )
    )
    return data_dir, splits


def _sorted_pairs(images: np.ndarray, labels: np.ndarray):
    """Images and labels in one canonical order (tfds stores examples in an order of its own)."""
    order = np.lexsort(images.reshape(len(images), -1).T[::-1])
    return images[order], labels[order]


def test_tfds_prepared_cifar10(tfds_data_dir):
    data_dir, splits = tfds_data_dir
    dataset = load_cifar10_tfds(data_dir)
    assert dataset.name == "cifar10" and dataset.class_names == CIFAR10_CLASSES
    assert str(data_dir) in dataset.description
    for split in ("train", "test"):
        images, labels = getattr(dataset, f"{split}_images"), getattr(dataset, f"{split}_labels")
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        assert images.shape == splits[split][0].shape  # (n, 32, 32, 3)
        for got, written in zip(_sorted_pairs(images, labels), _sorted_pairs(*splits[split]), strict=True):
            np.testing.assert_array_equal(got, written)  # every pixel (PNG is lossless) and its label


def test_tfds_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetNotFoundError, match=re.escape("`tfds build cifar10 --file_format=array_record`")):
        load_cifar10_tfds(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was downloaded or written


def test_tfds_prepared_without_random_access(tfds_data_dir, tmp_path):
    """CIFAR-10 prepared as TFRecord (`tfds build`'s default) cannot be read without TensorFlow: say so."""
    data_dir, _ = tfds_data_dir
    copy = tmp_path / "tfds"
    shutil.copytree(data_dir / "cifar10", copy / "cifar10")
    info_file = next(copy.glob("cifar10/*/dataset_info.json"))
    info_file.write_text(info_file.read_text().replace('"array_record"', '"tfrecord"'))
    with pytest.raises(DatasetNotFoundError, match="is prepared as tfrecord, which tfds.data_source cannot read"):
        load_cifar10_tfds(copy)


# --- The offline digits -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_digits_32x32()


def test_digits(digits):
    from sklearn.datasets import load_digits

    original = load_digits()
    assert digits.name == "digits" and digits.class_names == tuple("0123456789")
    assert digits.train_images.shape == (1442, 32, 32, 3) and digits.test_images.shape == (355, 32, 32, 3)
    assert digits.train_images.dtype == np.uint8 and digits.train_labels.dtype == np.int32
    images = np.concatenate([digits.train_images, digits.test_images])
    assert images.min() == 0 and images.max() == 255
    # Grey in three equal channels; nearest upsampling: constant 4x4 blocks.
    assert (images == images[..., :1]).all()
    np.testing.assert_array_equal(images, np.kron(images[:, ::4, ::4], np.ones((1, 4, 4, 1), np.uint8)))
    # Stratified: every 5th image of each class (in the data's order) is a test image; both splits keep the order.
    test = np.zeros(len(original.target), bool)
    for label in range(10):
        test[np.flatnonzero(original.target == label)[4::5]] = True
    for split, mask in (("train", ~test), ("test", test)):
        np.testing.assert_array_equal(getattr(digits, f"{split}_labels"), original.target[mask])
        expected = np.round(original.images[mask] / 16 * 255)  # 0..16 -> 0..255
        np.testing.assert_array_equal(getattr(digits, f"{split}_images")[:, ::4, ::4, 0], expected)
    assert np.bincount(digits.test_labels).tolist() == [n // 5 for n in np.bincount(original.target)]


def test_digits_is_deterministic(digits):
    again = load_digits_32x32()
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(again, field), getattr(digits, field))


# --- ImageDataset -----------------------------------------------------------------------------------------------


def _arrays(num_train=4, num_test=2):
    return dict(
        train_images=np.zeros((num_train, 32, 32, 3), np.uint8),
        train_labels=np.arange(num_train, dtype=np.int32) % 2,
        test_images=np.zeros((num_test, 32, 32, 3), np.uint8),
        test_labels=np.zeros(num_test, np.int32),
    )


def test_image_dataset_is_immutable():
    arrays = _arrays()
    dataset = ImageDataset("toy", "Toy data.", ["a", "b"], **arrays)
    assert dataset.class_names == ("a", "b") and dataset.num_classes == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.name = "other"
    with pytest.raises(ValueError, match="read-only"):
        dataset.train_images[0, 0, 0, 0] = 1
    arrays["train_images"][0, 0, 0, 0] = 1  # the caller's array is not frozen, and not copied
    assert dataset.train_images[0, 0, 0, 0] == 1


@pytest.mark.parametrize(
    "change, error, message",
    [
        (
            dict(train_images=np.zeros((4, 32, 32, 3), np.float32)),
            TypeError,
            "`train_images` must be a numpy uint8 array",
        ),
        (dict(test_labels=np.zeros(2, np.int64)), TypeError, "`test_labels` must be a numpy int32 array; got int64"),
        (dict(train_images=np.zeros((4, 32, 32), np.uint8)), ValueError, "`train_images` must have shape (N, H, W, C)"),
        (dict(test_labels=np.zeros(3, np.int32)), ValueError, "`test_labels` must have shape (2,)"),
        (
            dict(train_labels=np.array([0, 1, 2, 0], np.int32)),
            ValueError,
            "`train_labels` must be class indices in [0, 2)",
        ),
        (
            dict(test_images=np.zeros((2, 28, 28, 3), np.uint8)),
            ValueError,
            "train and test images must have one (H, W, C)",
        ),
    ],
    ids=["float_images", "int64_labels", "rank3_images", "labels_length", "label_out_of_range", "image_shapes"],
)
def test_image_dataset_checks(change, error, message):
    with pytest.raises(error, match=re.escape(message)):
        ImageDataset("toy", "Toy data.", ("a", "b"), **(_arrays() | change))


# --- load_dataset ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(CIFAR10_DIR_ENV, raising=False)


def test_load_dataset_digits(no_env, monkeypatch, tmp_path):
    monkeypatch.setenv(CIFAR10_DIR_ENV, str(tmp_path / "ignored"))  # only 'cifar10' and 'auto' look at it
    dataset = load_dataset("digits")
    assert dataset.name == "digits" and dataset.description.endswith("Chosen because name='digits' was asked for.")


@pytest.mark.parametrize("name", ["auto", "cifar10"])
def test_load_dataset_cifar10_dir_and_environment(name, no_env, monkeypatch, tmp_path):
    files = write_torchvision_files(tmp_path)
    dataset = load_dataset(name, cifar10_dir=tmp_path)
    check_torchvision_dataset(dataset, files)
    assert dataset.description.endswith("Chosen because `cifar10_dir` names it.")

    monkeypatch.setenv(CIFAR10_DIR_ENV, str(tmp_path / "cifar-10-batches-py"))
    dataset = load_dataset(name)
    check_torchvision_dataset(dataset, files)
    assert dataset.description.endswith(f"Chosen because ${CIFAR10_DIR_ENV} names it.")

    monkeypatch.setenv(CIFAR10_DIR_ENV, str(tmp_path / "nowhere"))  # the argument beats the environment
    assert "`cifar10_dir` names it" in load_dataset(name, cifar10_dir=tmp_path).description


@pytest.mark.parametrize("name", ["auto", "cifar10"])
def test_load_dataset_named_directory_without_cifar10_raises(name, no_env, monkeypatch, tmp_path):
    """A typo in a named directory must not silently train on other data."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(name, cifar10_dir=tmp_path / "nowhere")
    monkeypatch.setenv(CIFAR10_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(name)


@pytest.mark.parametrize("name", ["auto", "cifar10"])
def test_load_dataset_tfds(name, tfds_data_dir, no_env, monkeypatch, tmp_path):
    data_dir, _ = tfds_data_dir
    monkeypatch.setenv(CIFAR10_DIR_ENV, str(tmp_path / "nowhere"))  # not consulted: tfds_data_dir is an argument
    dataset = load_dataset(name, tfds_data_dir=data_dir)
    assert dataset.name == "cifar10" and len(dataset.train_labels) == TFDS_TRAIN_SIZE
    assert dataset.description.endswith(
        "no directory of torchvision's files was named and tensorflow-datasets has it prepared."
    )


def test_load_dataset_auto_falls_back_to_digits(no_env, tmp_path):
    pytest.importorskip("tensorflow_datasets")
    dataset = load_dataset("auto", tfds_data_dir=tmp_path)
    assert dataset.name == "digits"
    assert (
        f"Chosen because no CIFAR-10 was found. No directory of torchvision's CIFAR-10 files was named: set "
        f"${CIFAR10_DIR_ENV} or pass `cifar10_dir`. tensorflow-datasets has no prepared CIFAR-10 at "
        f"{tmp_path}" in dataset.description
    )
    with pytest.raises(FileNotFoundError, match="tensorflow-datasets has no prepared CIFAR-10"):
        load_dataset("cifar10", tfds_data_dir=tmp_path)


@pytest.mark.parametrize("name", ["auto", "cifar10"])
def test_load_dataset_tfds_data_dir_that_does_not_exist_raises(name, no_env, tmp_path):
    """A typo in `tfds_data_dir` must not silently train on the digits (nor need tfds to be reported)."""
    message = (
        f"load_dataset: `tfds_data_dir` {tmp_path / 'nowhere'} does not exist: it must name tensorflow-datasets' "
        f"data directory (the one holding cifar10/), or be left unset for tfds' default."
    )
    with pytest.raises(DatasetNotFoundError, match=re.escape(message)):
        load_dataset(name, tfds_data_dir=tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(
        DatasetNotFoundError, match=re.escape(f"`tfds_data_dir` {tmp_path / 'file'} is not a directory")
    ):
        load_dataset(name, tfds_data_dir=str(tmp_path / "file"))
    with pytest.raises(DatasetNotFoundError, match=re.escape(f"load_cifar10_tfds: `data_dir` {tmp_path / 'nowhere'}")):
        load_cifar10_tfds(tmp_path / "nowhere")


def test_load_dataset_without_tensorflow_datasets(no_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes its import fail
    dataset = load_dataset("auto")
    assert dataset.name == "digits" and "tensorflow-datasets is not installed" in dataset.description
    with pytest.raises(MissingPackageError, match=re.escape("tensorflow-datasets is not installed (`pip install")):
        load_dataset("cifar10")


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (
            dict(name="cifar100"),
            DatasetArgumentError,
            "`name` must be one of ('auto', 'cifar10', 'digits'); got 'cifar100'",
        ),
        (dict(name=None), TypeError, "`name` must be a string; got NoneType"),
        (dict(name="cifar10", cifar10_dir="a", tfds_data_dir="b"), DatasetArgumentError, "not both"),
        (dict(name="digits", cifar10_dir="a"), DatasetArgumentError, "name='digits' uses neither"),
        (dict(name="digits", tfds_data_dir="b"), DatasetArgumentError, "name='digits' uses neither"),
    ],
    ids=["unknown_name", "name_not_str", "both_dirs", "digits_with_cifar10_dir", "digits_with_tfds_dir"],
)
def test_load_dataset_bad_arguments(arguments, error, message):
    with pytest.raises(error, match=re.escape(message)):
        load_dataset(arguments["name"], **{key: value for key, value in arguments.items() if key != "name"})


def test_importing_the_module_imports_no_loader_package():
    code = (
        "import sys, experiments.datasets; "
        "print(sorted(m for m in ('tensorflow_datasets', 'sklearn') if m in sys.modules))"
    )
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": repository},
        timeout=120,
    )
    assert result.stdout.strip() == "[]"


# --- The real CIFAR-10 (optional) -----------------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get(CIFAR10_DIR_ENV), reason=f"${CIFAR10_DIR_ENV} does not name CIFAR-10's files")
def test_real_cifar10():
    """CIFAR-10's files, named by the environment as CI may do: sizes, classes, and 5000 / 1000 images per class."""
    dataset = load_dataset("cifar10")
    assert dataset.class_names == CIFAR10_CLASSES
    assert dataset.train_images.shape == (50_000, 32, 32, 3) and dataset.test_images.shape == (10_000, 32, 32, 3)
    assert np.bincount(dataset.train_labels).tolist() == [5000] * 10
    assert np.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert 0 < dataset.train_images.mean() < 255
