"""Whole image-classification datasets in memory: CIFAR-10 and an offline default.

Every loader returns an `ImageDataset`: uint8 NHWC images and int32 labels for a train and a test split, the
class names, and a sentence saying what the data is. The sources:

* `load_cifar10_tfds`: CIFAR-10 as tensorflow-datasets prepared it (read with its TensorFlow-free
  `data_source`; never downloads).
* `load_cifar10_torchvision`: the files a PyTorch user already has, torchvision's ``cifar-10-batches-py/``
  folder or ``cifar-10-python.tar.gz``.
* `load_digits_32x32`: scikit-learn's bundled handwritten digits, real data that needs no download.

`load_dataset` chooses among them and says which it chose and why. tensorflow-datasets and scikit-learn are
imported by the loaders that need them, so importing this module is cheap.

What the user can fix (a missing or misnamed directory, a truncated or damaged download, a file that is not
CIFAR-10's) raises a `DatasetError`, an `experiments.errors.RunError` whose message names the file or directory
and says what to do; each also derives from the built-in error it refines (`FileNotFoundError`, `ValueError`,
`ImportError`, `pickle.UnpicklingError`).
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import pickle
import tarfile
import zlib

import numpy as np

from experiments.errors import RunError

CIFAR10_DIR_ENV = "JAXLOSS_CIFAR10_DIR"
"""The environment variable naming torchvision's CIFAR-10 files when `load_dataset` is given none."""

DATASET_NAMES = ("auto", "cifar10", "digits")
"""The names `load_dataset` accepts."""

_CIFAR10_IMAGE_SHAPE = (32, 32, 3)

_TORCHVISION_FOLDER = "cifar-10-batches-py"
_TORCHVISION_ARCHIVE = "cifar-10-python.tar.gz"
_TORCHVISION_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TORCHVISION_TEST_FILE = "test_batch"
_TORCHVISION_META_FILE = "batches.meta"
_TORCHVISION_FILES = (_TORCHVISION_META_FILE, *_TORCHVISION_TRAIN_FILES, _TORCHVISION_TEST_FILE)
# The archive torchvision downloads, from CIFAR-10's page, and its size and md5 (torchvision's `tgz_md5`). A file
# of another size is taken as a repacked archive and not hashed.
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_OFFICIAL_ARCHIVE_SIZE = 170_498_071
_OFFICIAL_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
_DOWNLOAD_AGAIN = (
    f"Download CIFAR-10 again ({_CIFAR10_URL}, or torchvision's `CIFAR10(root, download=True)` after deleting "
    f"the damaged copy)."
)

_TFDS_HOW_TO_PREPARE = (
    "Prepare it once (this needs TensorFlow and a download): `pip install tensorflow tensorflow-datasets` and "
    "`tfds build cifar10 --file_format=array_record` (add `--data_dir=DIR` for another place)."
)
# Examples decoded per batched tfds read: bounds the records and decoded dicts held at once (~30 MB).
_TFDS_READ_CHUNK = 10_000

# The digits' test set: within each class, in the data's order, every 5th image (a stratified 20% split that
# depends on no random number generator).
_DIGITS_TEST_EVERY = 5


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """An image classification dataset held in memory, immutable.

    The arrays are read-only views (the arrays given are not copied, and stay writable for their owner).

    Attributes:
      name: short name of the data, e.g. ``'cifar10'`` or ``'digits'``.
      description: a sentence saying what the data is, where it was read from and, from `load_dataset`,
        why it was chosen.
      class_names: the name of each class, indexed by label.
      train_images: ``(N, H, W, C)`` uint8 images of the training split, NHWC.
      train_labels: ``(N,)`` int32 class indices in ``[0, len(class_names))``.
      test_images: ``(M, H, W, C)`` uint8 images of the test split (the same H, W, C).
      test_labels: ``(M,)`` int32 class indices.

    Raises:
      TypeError: an array has the wrong dtype.
      ValueError: an array has the wrong shape, or a label is not a class index.

    Example:
      >>> import numpy as np
      >>> from experiments.datasets import ImageDataset
      >>> images = np.zeros((4, 32, 32, 3), np.uint8)
      >>> dataset = ImageDataset("toy", "Four black images.", ("a", "b"), images, np.array([0, 1, 0, 1], np.int32),
      ...                        images[:2], np.array([1, 0], np.int32))
      >>> dataset.num_classes, dataset.train_images.shape, dataset.train_images.flags.writeable
      (2, (4, 32, 32, 3), False)
    """

    name: str
    description: str
    class_names: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(self.class_names))
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            _check_dtype(f"{split}_images", images, np.uint8)
            _check_dtype(f"{split}_labels", labels, np.int32)
            if images.ndim != 4:
                raise ValueError(f"ImageDataset: `{split}_images` must have shape (N, H, W, C); got {images.shape}.")
            if labels.shape != images.shape[:1]:
                raise ValueError(
                    f"ImageDataset: `{split}_labels` must have shape ({len(images)},), one label per "
                    f"image; got {labels.shape}."
                )
            if labels.size and not 0 <= labels.min() <= labels.max() < self.num_classes:
                raise ValueError(
                    f"ImageDataset: `{split}_labels` must be class indices in [0, {self.num_classes}); "
                    f"got values from {labels.min()} to {labels.max()}."
                )
            object.__setattr__(self, f"{split}_images", _read_only(images))
            object.__setattr__(self, f"{split}_labels", _read_only(labels))
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(
                f"ImageDataset: train and test images must have one (H, W, C); got "
                f"{self.train_images.shape[1:]} and {self.test_images.shape[1:]}."
            )

    @property
    def num_classes(self) -> int:
        """The number of classes, ``len(class_names)``."""
        return len(self.class_names)


def _check_dtype(argument: str, array, dtype) -> None:
    """Raises `TypeError` unless `array` is a numpy array of `dtype`."""
    if not isinstance(array, np.ndarray) or array.dtype != dtype:
        raise TypeError(
            f"ImageDataset: `{argument}` must be a numpy {np.dtype(dtype)} array; got "
            f"{getattr(array, 'dtype', type(array).__name__)}."
        )


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of `array` (no copy; `array` itself keeps its flags)."""
    view = array.view()
    view.flags.writeable = False
    return view


# --- Errors -------------------------------------------------------------------------------------------------------


class DatasetError(RunError):
    """The data cannot be loaded, for a reason the user can fix; the message names the file or directory."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A directory or file named, or one that CIFAR-10 needs, is not there."""


class DatasetFileError(DatasetError, ValueError):
    """A file does not hold what CIFAR-10's files hold (keys, dtypes, shapes, label range)."""


class DamagedFileError(DatasetFileError):
    """A file is truncated or damaged (a short read, a bad gzip CRC, a wrong md5): it must be downloaded again."""


class UnsafePickleError(DatasetFileError, pickle.UnpicklingError):
    """A pickle refers to a class other than numpy's array classes: it could run code, so it is not read."""


class MissingPackageError(DatasetError, ImportError):
    """The package a loader needs is not installed; the message says what to install."""


class DatasetArgumentError(DatasetError, ValueError):
    """`load_dataset` was asked for data it does not have, or given directories that contradict each other."""


# --- CIFAR-10 through tensorflow-datasets ---------------------------------------------------------------------


def load_cifar10_tfds(data_dir: str | os.PathLike | None = None) -> ImageDataset:
    """CIFAR-10 as tensorflow-datasets prepared it, read whole into memory without TensorFlow.

    Reads the prepared ``cifar10`` (50,000 train and 10,000 test images, in the order tfds stored them) through
    tfds' random-access data source, as ``tfds.data_source('cifar10', download=False)`` does: batched reads of
    the array_record (or parquet) files, each PNG decoded by Pillow (or OpenCV when installed). That takes
    10 to 15 s for the whole dataset on a 2-core CPU, a quarter of a millisecond per image spent in tfds'
    per-example Python decoding (threads do not help), against about 1 s for torchvision's pickles. One
    ``source[i]`` per example instead of the batched reads would take twice as long.

    Args:
      data_dir: tfds' data directory; None for its default (``$TFDS_DATA_DIR``, else
        ``~/tensorflow_datasets``).

    Returns:
      The dataset, named ``'cifar10'``.

    Raises:
      DatasetNotFoundError: `data_dir` does not exist; or CIFAR-10 is not prepared there, or only in a format
        without random access (TFRecord, tfds' default): the message says how to prepare it.
        A `FileNotFoundError`.
      MissingPackageError: tensorflow-datasets is not installed. An `ImportError`.
    """
    _check_tfds_data_dir(data_dir, "load_cifar10_tfds: `data_dir`")
    return _read_tfds_cifar10(_prepared_tfds_cifar10(data_dir))


def _check_tfds_data_dir(data_dir, argument: str) -> None:
    """Raises `DatasetNotFoundError` if `data_dir` is given (not None) but is not a directory.

    A data directory the user names must be there: tfds would otherwise treat it as an empty one, and
    `load_dataset('auto')` would fall back to the digits, hiding a typo.
    """
    if data_dir is not None and not pathlib.Path(data_dir).expanduser().is_dir():
        what = "is not a directory" if pathlib.Path(data_dir).expanduser().exists() else "does not exist"
        raise DatasetNotFoundError(
            f"{argument} {data_dir} {what}: it must name tensorflow-datasets' data directory (the one holding "
            f"cifar10/), or be left unset for tfds' default."
        )


def _prepared_tfds_cifar10(data_dir):
    """The tfds builder of CIFAR-10 prepared under `data_dir` in a random-access format (a quick check).

    Raises:
      MissingPackageError: tensorflow-datasets is not installed.
      DatasetNotFoundError: CIFAR-10 is not prepared there in a random-access format.
    """
    try:
        import tensorflow_datasets as tfds  # optional, and slow to import: only when used
    except ImportError as error:
        message = f"tensorflow-datasets is not installed (`pip install tensorflow-datasets`): {error}."
        raise MissingPackageError(message) from error
    # Without a cifar10 folder there is nothing to find: say so without asking tfds' builder, which logs a
    # warning about the missing version folder.
    folder = pathlib.Path(data_dir or tfds.core.constants.DATA_DIR).expanduser() / "cifar10"
    if not folder.is_dir():
        raise DatasetNotFoundError(f"tensorflow-datasets has no prepared CIFAR-10 at {folder}. {_TFDS_HOW_TO_PREPARE}")
    builder = tfds.builder("cifar10", data_dir=data_dir)
    if not builder.is_prepared():
        raise DatasetNotFoundError(
            f"tensorflow-datasets has no prepared CIFAR-10 at {builder.data_dir}. {_TFDS_HOW_TO_PREPARE}"
        )
    random_access = builder.info.available_file_formats() & set(tfds.core.FileFormat.with_random_access())
    if not random_access:
        formats = ", ".join(sorted(str(f.value) for f in builder.info.available_file_formats()))
        raise DatasetNotFoundError(
            f"tensorflow-datasets' CIFAR-10 at {builder.data_dir} is prepared as {formats}, "
            f"which tfds.data_source cannot read (it needs array_record or parquet). "
            f"{_TFDS_HOW_TO_PREPARE}"
        )
    return builder


def _read_tfds_cifar10(builder) -> ImageDataset:
    """Reads both splits of a prepared tfds CIFAR-10 into an `ImageDataset`."""
    train, test = builder.as_data_source(split=["train", "test"])
    train_images, train_labels = _read_tfds_split(train)
    test_images, test_labels = _read_tfds_split(test)
    return ImageDataset(
        name="cifar10",
        description=(
            f"CIFAR-10 from tensorflow-datasets' prepared copy at {builder.data_dir}: "
            f"{len(train_labels)} train and {len(test_labels)} test 32x32 colour images."
        ),
        class_names=tuple(builder.info.features["label"].names),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
    )


def _read_tfds_split(source) -> tuple[np.ndarray, np.ndarray]:
    """All of a tfds data source's ``{'image', 'label'}`` examples as ``(N, 32, 32, 3)`` uint8, ``(N,)`` int32."""
    num_examples = len(source)
    images = np.empty((num_examples, *_CIFAR10_IMAGE_SHAPE), np.uint8)
    labels = np.empty((num_examples,), np.int32)
    for start in range(0, num_examples, _TFDS_READ_CHUNK):
        stop = min(start + _TFDS_READ_CHUNK, num_examples)
        # `__getitems__` is tfds' batched read (the one PyTorch's DataLoader uses).
        examples = source.__getitems__(range(start, stop))
        np.stack([example["image"] for example in examples], out=images[start:stop])
        labels[start:stop] = [example["label"] for example in examples]
    return images, labels


# --- CIFAR-10 from torchvision's files ---------------------------------------------------------------------------


def load_cifar10_torchvision(path: str | os.PathLike) -> ImageDataset:
    """CIFAR-10 from the python-pickle files that ``torchvision.datasets.CIFAR10`` downloads and reads.

    Reads ``data_batch_1`` ... ``data_batch_5`` (train, in that order), ``test_batch`` and ``batches.meta``
    (the class names), keeping the files' order. Each batch holds ``'data'``, an ``(n, 3072)`` uint8 array whose
    rows are three 32x32 planes (red, green, blue; each row-major), and ``'labels'``; torchvision turns them into
    images with ``data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)``, and so does this loader (NHWC).

    The files are pickles, and unpickling can run code: only the classes a numpy array needs are let through,
    so a tampered file fails with `UnsafePickleError` instead of running anything.

    The archive is read once, from start to end, so that a truncated or damaged download is found (gzip's CRC
    and length, checked at the end of the stream); an archive of the official size (170,498,071 bytes) is also
    hashed as it is read and must have the official md5. An archive of another size is a repacked one, and only
    its gzip CRC is checked.

    Args:
      path: one of
        - the ``cifar-10-batches-py/`` folder;
        - the folder holding it (torchvision's ``root``), or holding ``cifar-10-python.tar.gz``;
        - ``cifar-10-python.tar.gz`` itself, read without extracting it to disk.

    Returns:
      The dataset, named ``'cifar10'``.

    Raises:
      DatasetNotFoundError: `path` does not exist, or holds neither the folder nor the archive, or a file is
        missing. A `FileNotFoundError`.
      DamagedFileError: the archive or a pickle is truncated or damaged, or the official archive's md5 is
        wrong: the message names the file and says to download it again. A `ValueError`.
      DatasetFileError: a file does not hold what CIFAR-10's files hold (keys, dtypes, shapes, label range).
        A `ValueError`.
      UnsafePickleError: a pickle refers to a class other than numpy's array classes. A
        `pickle.UnpicklingError` and a `ValueError`.
    """
    path = pathlib.Path(path).expanduser()
    source = _torchvision_source(path)
    files = _read_archive(source) if source.is_file() else _read_folder(source)
    class_names = _class_names(files[_TORCHVISION_META_FILE])
    train = [_torchvision_batch(files[name], name, len(class_names)) for name in _TORCHVISION_TRAIN_FILES]
    test_data, test_labels = _torchvision_batch(files[_TORCHVISION_TEST_FILE], _TORCHVISION_TEST_FILE, len(class_names))
    train_labels = np.concatenate([labels for _, labels in train])
    train_images = _planes_to_nhwc(np.concatenate([data for data, _ in train]))
    return ImageDataset(
        name="cifar10",
        description=(
            f"CIFAR-10 from torchvision's files at {source}: {len(train_labels)} train and "
            f"{len(test_labels)} test 32x32 colour images in {len(class_names)} classes."
        ),
        class_names=class_names,
        train_images=train_images,
        train_labels=train_labels,
        test_images=_planes_to_nhwc(test_data),
        test_labels=test_labels,
    )


def _torchvision_source(path: pathlib.Path) -> pathlib.Path:
    """The ``cifar-10-batches-py`` folder or the ``.tar.gz`` archive that `path` names or holds."""
    if not path.exists():
        raise DatasetNotFoundError(f"load_cifar10_torchvision: `path` {path} does not exist.")
    if path.is_file():
        return path
    for candidate in (path / _TORCHVISION_FOLDER, path / _TORCHVISION_ARCHIVE):
        if candidate.exists():
            return candidate
    if (path / _TORCHVISION_META_FILE).exists() or (path / _TORCHVISION_TEST_FILE).exists():
        return path
    raise DatasetNotFoundError(
        f"load_cifar10_torchvision: {path} holds neither CIFAR-10's batch files nor {_TORCHVISION_FOLDER}/ "
        f"nor {_TORCHVISION_ARCHIVE}; `path` must name one of them or the folder holding them."
    )


def _read_folder(folder: pathlib.Path) -> dict[str, dict]:
    """Unpickles the CIFAR-10 files of a ``cifar-10-batches-py`` folder."""
    files = {}
    for name in _TORCHVISION_FILES:
        try:
            with open(folder / name, "rb") as file:
                files[name] = _unpickle(file, folder / name)
        except FileNotFoundError:
            raise DatasetNotFoundError(f"load_cifar10_torchvision: {folder / name} is missing.") from None
    return files


def _read_archive(archive: pathlib.Path) -> dict[str, dict]:
    """Unpickles the CIFAR-10 files of ``cifar-10-python.tar.gz`` in one pass over it, in memory, checking it.

    tarfile stops reading at the tar's end-of-archive blocks, before gzip's trailer: the rest is read too, so
    that gzip checks its CRC and length. An archive of the official size is hashed as it is read.
    """
    wanted = {f"{_TORCHVISION_FOLDER}/{name}": name for name in _TORCHVISION_FILES}
    files = {}
    with open(archive, "rb") as raw:
        hashed = os.fstat(raw.fileno()).st_size == _OFFICIAL_ARCHIVE_SIZE
        source = _HashingReader(raw, hashlib.md5(usedforsecurity=False)) if hashed else raw
        try:
            tar = tarfile.open(fileobj=source, mode="r:*")
        except tarfile.ReadError as error:  # neither a plain tar nor a gzip, bzip2 or xz compressed one
            raise DamagedFileError(
                f"load_cifar10_torchvision: {archive} is not a readable tar archive (plain or compressed): it is "
                f"damaged, or not CIFAR-10's archive. {_DOWNLOAD_AGAIN}"
            ) from error
        except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError) as error:
            raise _damaged(archive, error) from error
        try:
            with tar:
                for member in tar:  # in archive order: a gzip stream is slow to seek backwards
                    name = wanted.get(member.name.removeprefix("./"))
                    if name is not None and member.isfile():
                        # Read whole before unpickling, so that a truncated stream is the archive's error.
                        data = tar.extractfile(member).read()
                        files[name] = _unpickle(io.BytesIO(data), f"{archive}:{member.name}")
                while tar.fileobj.read(1 << 20):  # to the end of the compressed stream, where gzip checks it
                    pass
        except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError) as error:
            raise _damaged(archive, error) from error
        if hashed and (md5 := source.hexdigest_to_end()) != _OFFICIAL_ARCHIVE_MD5:
            raise DamagedFileError(
                f"load_cifar10_torchvision: {archive} has the official archive's size but not its md5 "
                f"({md5} instead of {_OFFICIAL_ARCHIVE_MD5}): it is damaged. {_DOWNLOAD_AGAIN}"
            )
    missing = [member for member, name in wanted.items() if name not in files]
    if missing:
        raise DatasetNotFoundError(f"load_cifar10_torchvision: {archive} lacks {', '.join(missing)}.")
    return files


def _damaged(path, error: Exception, what: str = "is truncated or damaged") -> DamagedFileError:
    """The error for a truncated or damaged `path`, that says to download it again."""
    reason = " ".join(str(error).split())  # on one line (some of pickle's messages have two)
    return DamagedFileError(f"load_cifar10_torchvision: {path} {what} ({reason}). {_DOWNLOAD_AGAIN}")


class _HashingReader:
    """A binary file read through, whose bytes are hashed in order as they are first read.

    Reading forward, as tarfile and gzip do, hashes every byte once, as it is read; a byte read again after a
    seek backwards is not hashed again, and `hexdigest_to_end` reads and hashes what was skipped or not read.
    """

    def __init__(self, file, hash_object):
        self._file = file
        self._hash = hash_object
        self._position = file.tell()
        self._hashed = 0  # bytes [0, _hashed) of the file are in the hash

    def read(self, size=-1) -> bytes:
        data = self._file.read(size)
        start, self._position = self._position, self._position + len(data)
        if start <= self._hashed < self._position:
            self._hash.update(memoryview(data)[self._hashed - start :])
            self._hashed = self._position
        return data

    def seek(self, offset, whence=os.SEEK_SET) -> int:
        self._position = self._file.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def hexdigest_to_end(self) -> str:
        """The hash of the whole file, reading what was not read in order yet."""
        self.seek(self._hashed)
        while self.read(1 << 20):
            pass
        return self._hash.hexdigest()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only, refusing every other global (which could run code)."""

    # What numpy arrays pickled by Python 2 (CIFAR-10's files) and by Python 3 with numpy 1 or 2 refer to.
    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),  # bytes pickled with protocol 2 by Python 3
        }
    )

    def __init__(self, file, where, **kwargs):
        super().__init__(file, **kwargs)
        self._where = where

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise UnsafePickleError(
                f"load_cifar10_torchvision: {self._where} is not CIFAR-10's: {module}.{name} is not allowed in "
                f"CIFAR-10's files (only numpy arrays are; unpickling anything else could run code)."
            )
        return super().find_class(module, name)


def _unpickle(file, where) -> dict:
    """One CIFAR-10 pickle as a dict with str keys."""
    try:
        # latin1, as torchvision does: Python 2's str (the original files' keys and array bytes) decode losslessly.
        entry = _NumpyOnlyUnpickler(file, where, encoding="latin1").load()
    except UnsafePickleError:
        raise
    # A truncated pickle ends early (EOFError when empty, else UnpicklingError); a damaged one holds a bad opcode
    # (UnpicklingError) or bad arguments for one (mostly ValueError; also the others, seen on flipped bits).
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, IndexError, KeyError, TypeError) as error:
        raise _damaged(where, error, "is truncated, damaged or not a pickle") from error
    if not isinstance(entry, dict):
        raise DatasetFileError(f"load_cifar10_torchvision: {where} must hold a dict; got {type(entry).__name__}.")
    # Pickles written by Python 3 from the `encoding='bytes'` reading of the originals have bytes keys.
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in entry.items()}


def _field(entry: dict, key: str, name: str):
    """`entry[key]`, or a `DatasetFileError` naming the file `name` that lacks it."""
    if key not in entry:
        raise DatasetFileError(f"load_cifar10_torchvision: {name} has no '{key}'; it has {sorted(entry)}.")
    return entry[key]


def _class_names(meta: dict) -> tuple[str, ...]:
    """The class names of ``batches.meta``."""
    names = _field(meta, "label_names", _TORCHVISION_META_FILE)
    return tuple(name.decode("latin1") if isinstance(name, bytes) else str(name) for name in names)


def _torchvision_batch(entry: dict, name: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch file's ``(n, 3072)`` uint8 data and ``(n,)`` int32 labels, checked."""
    data, labels = _field(entry, "data", name), np.asarray(_field(entry, "labels", name))
    size = int(np.prod(_CIFAR10_IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        raise DatasetFileError(
            f"load_cifar10_torchvision: {name}'s 'data' must be a uint8 array of shape (n, {size}); "
            f"got {getattr(data, 'dtype', type(data).__name__)} {np.shape(data)}."
        )
    if labels.shape != data.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFileError(
            f"load_cifar10_torchvision: {name}'s 'labels' must be {len(data)} integers (one per "
            f"image); got {labels.dtype} {labels.shape}."
        )
    if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
        raise DatasetFileError(
            f"load_cifar10_torchvision: {name}'s 'labels' must be in [0, {num_classes}); got values "
            f"from {labels.min()} to {labels.max()}."
        )
    return data, labels.astype(np.int32)


def _planes_to_nhwc(data: np.ndarray) -> np.ndarray:
    """``(n, 3072)`` rows of red, green and blue 32x32 planes (each row-major) as ``(n, 32, 32, 3)`` images.

    torchvision's ``data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)``, made contiguous so that gathering a
    batch of images copies whole rows.
    """
    height, width, channels = _CIFAR10_IMAGE_SHAPE
    return np.ascontiguousarray(data.reshape(-1, channels, height, width).transpose(0, 2, 3, 1))


# --- The offline default: scikit-learn's digits ---------------------------------------------------------------


def load_digits_32x32() -> ImageDataset:
    """scikit-learn's bundled handwritten digits as 32x32 RGB images: real data, no download.

    The 1,797 8x8 greyscale digits (``sklearn.datasets.load_digits``, intensities 0..16) are scaled to
    0..255 (``round(v * 255 / 16)``), upsampled by nearest neighbour (each pixel becomes a 4x4 block) and
    copied into three channels, so the CIFAR-10 network runs on them unchanged.

    Nearest rather than bilinear: the images keep exactly the 64 measured intensities, with no invented
    in-between values, and no resampling convention (half-pixel alignment, which libraries disagree on) is
    involved; the 4x4 blocks also line up with the network's 2x2 pools.

    The split is fixed and stratified: within each class, in the data's order, every 5th image is a test image,
    giving 1,442 train and 355 test images (34 to 36 test images per digit). Both keep the data's order.

    Returns:
      The dataset, named ``'digits'``, with class names ``'0'`` ... ``'9'``.

    Raises:
      ImportError: scikit-learn is not installed.

    Example:
      >>> from experiments.datasets import load_digits_32x32
      >>> digits = load_digits_32x32()
      >>> digits.train_images.shape, digits.test_images.shape, digits.train_images.dtype
      ((1442, 32, 32, 3), (355, 32, 32, 3), dtype('uint8'))
    """
    from sklearn.datasets import load_digits  # slow to import: only when used

    digits = load_digits()
    labels = digits.target.astype(np.int32)
    grey = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255: 16 -> 255, 8 -> 128
    scale = _CIFAR10_IMAGE_SHAPE[0] // grey.shape[1]
    upsampled = grey.repeat(scale, axis=1).repeat(scale, axis=2)
    images = np.repeat(upsampled[..., None], _CIFAR10_IMAGE_SHAPE[2], axis=-1)

    # Each image's rank within its class, in the data's order: a stable sort by class keeps that order.
    by_class = np.argsort(labels, kind="stable")
    class_starts = np.searchsorted(labels[by_class], labels[by_class])
    rank = np.empty_like(labels)
    rank[by_class] = np.arange(len(labels)) - class_starts
    test = rank % _DIGITS_TEST_EVERY == _DIGITS_TEST_EVERY - 1
    return ImageDataset(
        name="digits",
        description=(
            f"scikit-learn's bundled handwritten digits (real data, no download): {len(labels)} 8x8 "
            f"greyscale images upsampled to 32x32x3 by nearest neighbour, {np.sum(~test)} train and "
            f"{np.sum(test)} test (every 5th image of each digit)."
        ),
        class_names=tuple(str(digit) for digit in range(10)),
        train_images=images[~test],
        train_labels=labels[~test],
        test_images=images[test],
        test_labels=labels[test],
    )


# --- Choosing ----------------------------------------------------------------------------------------------------


def load_dataset(
    name: str = "auto", *, cifar10_dir: str | os.PathLike | None = None, tfds_data_dir: str | os.PathLike | None = None
) -> ImageDataset:
    """Loads the data to train on, saying in its `description` which data it is and why it was chosen.

    Args:
      name: what to load:
        - ``'cifar10'``: CIFAR-10, from the first of
            1. torchvision's files named by `cifar10_dir`, else by the ``JAXLOSS_CIFAR10_DIR`` environment
               variable (not consulted when `tfds_data_dir` is given: arguments beat the environment);
            2. tensorflow-datasets' prepared copy (in `tfds_data_dir`, or tfds' default directory);
          raising when neither is there.
        - ``'auto'``: as ``'cifar10'``, but when no CIFAR-10 is there, the offline digits
          (`load_digits_32x32`) instead, with the reason in the description.
        - ``'digits'``: the offline digits.
      cifar10_dir: torchvision's CIFAR-10 files, any form `load_cifar10_torchvision` takes.
      tfds_data_dir: tensorflow-datasets' data directory.

    The issue lists tensorflow-datasets before torchvision's files. Here a directory the user names (argument
    or environment variable) comes first: it is an explicit choice, while tfds' copy is found implicitly in a
    default place. For the same reason a named directory that does not hold CIFAR-10 raises instead of falling
    back, so that a typo cannot silently train on other data; a `tfds_data_dir` that does not exist raises too.
    Without a named directory the issue's order holds: tfds' prepared CIFAR-10, then the digits. Looking for
    tfds' copy takes well under a second and never downloads.

    Returns:
      The dataset.

    Raises:
      TypeError: `name` is not a string.
      DatasetArgumentError: `name` is not one of `DATASET_NAMES`, or a directory is given that `name` does not
        use, or both directories are given. A `ValueError`.
      DatasetNotFoundError: the CIFAR-10 directory named does not hold CIFAR-10; or `tfds_data_dir` does not
        exist; or `name` is ``'cifar10'`` and none is there. A `FileNotFoundError`.
      MissingPackageError: `name` is ``'cifar10'``, no directory is named and tensorflow-datasets is not
        installed. An `ImportError`.
      DatasetError: the files are truncated, damaged or not CIFAR-10's (see `load_cifar10_torchvision`).

    Example:
      >>> from experiments.datasets import load_dataset
      >>> print(load_dataset("digits").description)
      scikit-learn's bundled handwritten digits ... Chosen because name='digits' was asked for.
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: `name` must be a string; got {type(name).__name__}.")
    if name not in DATASET_NAMES:
        raise DatasetArgumentError(f"load_dataset: `name` must be one of {DATASET_NAMES}; got {name!r}.")
    if cifar10_dir is not None and tfds_data_dir is not None:
        raise DatasetArgumentError(
            "load_dataset: give `cifar10_dir` (torchvision's files) or `tfds_data_dir` (tensorflow-datasets), not both."
        )
    if name == "digits":
        if cifar10_dir is not None or tfds_data_dir is not None:
            raise DatasetArgumentError(
                "load_dataset: `cifar10_dir` and `tfds_data_dir` are for 'cifar10' and 'auto'; "
                "name='digits' uses neither."
            )
        return _chosen(load_digits_32x32(), "name='digits' was asked for.")

    if cifar10_dir is not None:
        return _chosen(load_cifar10_torchvision(cifar10_dir), "`cifar10_dir` names it.")
    if tfds_data_dir is None and os.environ.get(CIFAR10_DIR_ENV):
        return _chosen(load_cifar10_torchvision(os.environ[CIFAR10_DIR_ENV]), f"${CIFAR10_DIR_ENV} names it.")

    _check_tfds_data_dir(tfds_data_dir, "load_dataset: `tfds_data_dir`")  # before 'auto' may fall back
    if name == "cifar10":
        builder = _prepared_tfds_cifar10(tfds_data_dir)
    else:
        try:
            builder = _prepared_tfds_cifar10(tfds_data_dir)
        except (ImportError, FileNotFoundError) as error:
            return _chosen(
                load_digits_32x32(),
                f"no CIFAR-10 was found. No directory of torchvision's CIFAR-10 files was named: set "
                f"${CIFAR10_DIR_ENV} or pass `cifar10_dir`. {error}",
            )
    return _chosen(
        _read_tfds_cifar10(builder),
        "no directory of torchvision's files was named and tensorflow-datasets has it prepared.",
    )


def _chosen(dataset: ImageDataset, reason: str) -> ImageDataset:
    """`dataset` with "Chosen because `reason`" (a sentence or more) added to its description."""
    return dataclasses.replace(dataset, description=f"{dataset.description} Chosen because {reason}")
