"""Datasets of the built-in `cnn` objective: digits, MNIST-style IDX folders and `.npz` files.

Everything here works on numpy arrays; moving them to a torch device happens in `_training`.
`check_dataset` reads only headers, so that a launcher can run it before a study starts.
"""

from __future__ import annotations

import dataclasses
import gzip
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import numpy as np

from hpo.errors import DatasetError

if TYPE_CHECKING:
    from ._config import CnnConfig

# An IDX header is two zero bytes, a type code (0x08 for unsigned bytes) and the number of
# dimensions, followed by one big-endian uint32 per dimension.
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"

_TRAIN_IMAGES = "train-images-idx3-ubyte"
_TRAIN_LABELS = "train-labels-idx1-ubyte"
_TEST_IMAGES = "t10k-images-idx3-ubyte"
_TEST_LABELS = "t10k-labels-idx1-ubyte"
_EXPECTED_IDX_FILES = f"{_TRAIN_IMAGES}[.gz] and {_TRAIN_LABELS}[.gz]"

# Folders where torchvision's MNIST and FashionMNIST classes keep the IDX files under their root.
_TORCHVISION_RAW_FOLDERS = ("MNIST/raw", "FashionMNIST/raw")


@dataclasses.dataclass(frozen=True)
class Splits:
    """Images as float32 (N, 1, H, W) in [0, 1] and labels as int64 in [0, num_classes)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def check_dataset(config: CnnConfig) -> None:
    """Raise `DatasetError` if the configured dataset cannot be read, reading only headers."""
    # CnnConfig sets data_dir exactly for the IDX datasets and path exactly for npz.
    if config.data_dir is not None:
        images, labels = find_idx_files(Path(config.data_dir))
        _check_idx_pair(images, labels)
    elif config.path is not None:
        check_npz(Path(config.path))


def load_splits(config: CnnConfig) -> Splits:
    """Load the configured dataset and split it into stratified train, validation and test sets.

    The split depends only on the data arguments and `seed`, never on trial parameters.
    """
    # CnnConfig sets data_dir exactly for the IDX datasets and path exactly for npz.
    if config.data_dir is not None:
        x, y = load_idx_folder(Path(config.data_dir))
    elif config.path is not None:
        x, y = load_npz(Path(config.path))
    else:
        x, y = load_digits()

    return split_dataset(
        x,
        y,
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        source=config.path or config.data_dir or config.dataset,
    )


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 1,797 8x8 digits, scaled from 0..16 to 0..1."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    digits = sklearn_load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return x, digits.target.astype(np.int64)


def find_idx_files(folder: Path) -> tuple[Path, Path]:
    """Return the training image and label files of an MNIST-style folder, raw or gzip."""
    if not folder.is_dir():
        raise DatasetError(
            f"dataset folder {folder} does not exist or is not a folder: set data_dir to the "
            f"folder that contains {_EXPECTED_IDX_FILES}"
        )

    images = _find_raw_or_gzip(folder, _TRAIN_IMAGES)
    labels = _find_raw_or_gzip(folder, _TRAIN_LABELS)
    if images is not None and labels is not None:
        return images, labels

    missing = [
        name for name, found in ((_TRAIN_IMAGES, images), (_TRAIN_LABELS, labels)) if not found
    ]
    what = "no IDX files" if len(missing) == 2 else f"no {missing[0]}[.gz]"
    hint = ""
    for raw_folder in _TORCHVISION_RAW_FOLDERS:
        if _find_raw_or_gzip(folder / raw_folder, _TRAIN_IMAGES) is not None:
            hint = f" (torchvision's layout: did you mean data_dir: {folder / raw_folder}?)"
    raise DatasetError(f"dataset folder {folder} has {what}: expected {_EXPECTED_IDX_FILES}{hint}")


def load_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST-style folder, adding the t10k files to the pool when both are present."""
    images_path, labels_path = find_idx_files(folder)
    pairs = [(images_path, labels_path)]
    test_images = _find_raw_or_gzip(folder, _TEST_IMAGES)
    test_labels = _find_raw_or_gzip(folder, _TEST_LABELS)
    if test_images is not None and test_labels is not None:
        pairs.append((test_images, test_labels))

    xs, ys = [], []
    for images, labels in pairs:
        _check_idx_pair(images, labels)
        xs.append(read_idx(images, _IDX_IMAGES_MAGIC))
        ys.append(read_idx(labels, _IDX_LABELS_MAGIC))

    x = (np.concatenate(xs).astype(np.float32) / 255.0)[:, None, :, :]
    return x, np.concatenate(ys).astype(np.int64)


def read_idx_header(path: Path, expected_magic: int) -> tuple[int, ...]:
    """Return the shape in an IDX file's header, raising `DatasetError` on a wrong magic number."""
    with _open_maybe_gzip(path) as file:
        return _read_idx_shape(file, path, expected_magic)


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes, raw or gzip, into an array of its header's shape."""
    with _open_maybe_gzip(path) as file:
        shape = _read_idx_shape(file, path, expected_magic)
        data = file.read()

    expected_size = int(np.prod(shape))
    if len(data) != expected_size:
        raise DatasetError(
            f"IDX file {path} is truncated or padded: its header gives shape {shape}, which is "
            f"{expected_size} bytes of data, but the file holds {len(data)}: download it again"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def check_npz(path: Path) -> None:
    """Check that `path` is an `.npz` with images `x` and integer labels `y`, reading headers."""
    try:
        with zipfile.ZipFile(path) as archive:
            x_shape, x_dtype = _read_npy_header(archive, path, "x")
            y_shape, y_dtype = _read_npy_header(archive, path, "y")
    except FileNotFoundError as e:
        raise DatasetError(f"npz file {path} not found: set path to an existing .npz file") from e
    except zipfile.BadZipFile as e:
        raise DatasetError(
            f"npz file {path} is not a valid .npz archive: write it with numpy.savez"
        ) from e

    _check_npz_arrays(path, x_shape, x_dtype, y_shape, y_dtype)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load images `x` and labels `y` from an `.npz`, relabelling the classes as 0..C-1.

    Images of type uint8 are divided by 255; other images whose maximum exceeds 1 are divided by
    that maximum, so pixel values land in [0, 1] as for the other datasets.
    """
    check_npz(path)
    with np.load(path, allow_pickle=False) as archive:
        x = archive["x"]
        y = archive["y"]

    if x.ndim == 3:
        x = x[:, None, :, :]
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    else:
        x = x.astype(np.float32)
        peak = float(np.abs(x).max()) if x.size else 0.0
        if peak > 1.0:
            x /= peak

    _, labels = np.unique(y, return_inverse=True)
    return x, labels.astype(np.int64)


def split_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    source: str,
) -> Splits:
    """Split into stratified train, validation and test sets whose sizes are fractions of all."""
    from sklearn.model_selection import train_test_split

    num_classes = int(y.max()) + 1 if y.size else 0
    if num_classes < 2:
        raise DatasetError(f"dataset {source} has fewer than 2 classes: a classifier needs two")

    indices = np.arange(len(y))
    try:
        rest, test = train_test_split(
            indices, test_size=test_fraction, stratify=y, random_state=seed
        )
        train, val = train_test_split(
            rest,
            test_size=val_fraction / (1.0 - test_fraction),
            stratify=y[rest],
            random_state=seed,
        )
    except ValueError as e:
        raise DatasetError(
            f"dataset {source} cannot be split into stratified train, validation and test sets: "
            f"{e}: add samples to the smallest classes or change val_fraction and test_fraction"
        ) from e

    return Splits(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x[test],
        y_test=y[test],
        num_classes=num_classes,
    )


def _find_raw_or_gzip(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _open_maybe_gzip(path: Path) -> IO[bytes]:
    # The gzip magic bytes decide, not the suffix, because some mirrors keep gzip files under
    # the raw name.
    with open(path, "rb") as file:
        is_gzip = file.read(2) == _GZIP_MAGIC
    if is_gzip:
        return cast("IO[bytes]", gzip.open(path, "rb"))
    return open(path, "rb")


def _read_idx_shape(file: IO[bytes], path: Path, expected_magic: int) -> tuple[int, ...]:
    header = file.read(4)
    magic = int.from_bytes(header, "big")
    if len(header) < 4 or magic != expected_magic:
        kind = "image" if expected_magic == _IDX_IMAGES_MAGIC else "label"
        raise DatasetError(
            f"IDX file {path} has magic number 0x{magic:08x}, but an MNIST {kind} file starts "
            f"with 0x{expected_magic:08x}: replace it with the original IDX file"
        )

    ndim = expected_magic & 0xFF
    dims = file.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"IDX file {path} ends inside its header: download it again")
    return tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))


def _check_idx_pair(images: Path, labels: Path) -> None:
    image_shape = read_idx_header(images, _IDX_IMAGES_MAGIC)
    label_shape = read_idx_header(labels, _IDX_LABELS_MAGIC)
    if image_shape[0] != label_shape[0]:
        raise DatasetError(
            f"IDX files {images} and {labels} disagree: {image_shape[0]} images but "
            f"{label_shape[0]} labels: use files from the same release"
        )


def _read_npy_header(
    archive: zipfile.ZipFile, path: Path, key: str
) -> tuple[tuple[int, ...], np.dtype[np.generic]]:
    try:
        member = archive.open(f"{key}.npy")
    except KeyError as e:
        keys = sorted(name.removesuffix(".npy") for name in archive.namelist())
        raise DatasetError(
            f"npz file {path} has no array {key!r} (it has {', '.join(keys) or 'none'}): save "
            "the images as x and the labels as y, as in numpy.savez(path, x=images, y=labels)"
        ) from e

    with member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            # NOTE: numpy has no public reader for the 3.0 header, so the array is loaded.
            with np.load(path, allow_pickle=False) as loaded:
                array = loaded[key]
            shape, dtype = array.shape, array.dtype
    return tuple(shape), np.dtype(dtype)


def _check_npz_arrays(
    path: Path,
    x_shape: tuple[int, ...],
    x_dtype: np.dtype[np.generic],
    y_shape: tuple[int, ...],
    y_dtype: np.dtype[np.generic],
) -> None:
    is_image_shape = len(x_shape) == 3 or (len(x_shape) == 4 and x_shape[1] == 1)
    if not is_image_shape:
        raise DatasetError(
            f"npz file {path}: x must have shape (N, H, W) or (N, 1, H, W), but got {x_shape}: "
            "store single-channel images"
        )
    if x_dtype.kind not in "buif":
        raise DatasetError(f"npz file {path}: x must hold numbers, but got dtype {x_dtype}")
    if len(y_shape) != 1 or y_dtype.kind not in "iu":
        raise DatasetError(
            f"npz file {path}: y must be a 1-D array of integer labels, but got shape {y_shape} "
            f"and dtype {y_dtype}"
        )
    if x_shape[0] != y_shape[0]:
        raise DatasetError(
            f"npz file {path}: x has {x_shape[0]} images but y has {y_shape[0]} labels: "
            "give one label per image"
        )
