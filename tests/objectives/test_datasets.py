from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from hpo.errors import DatasetError
from hpo.objectives import check_objective
from hpo.objectives._datasets import (
    load_digits,
    load_idx_folder,
    load_npz,
    read_idx,
    split_dataset,
)

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write `array` of unsigned bytes as an IDX file, as the MNIST distribution does."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist_folder(
    folder: Path, *, count: int = 30, compress: bool = False, with_t10k: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = np.arange(count, dtype=np.uint8) % 3
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte", images, compress=compress)
    write_idx(folder / "train-labels-idx1-ubyte", labels, compress=compress)
    if with_t10k:
        write_idx(folder / "t10k-images-idx3-ubyte", images[:9], compress=compress)
        write_idx(folder / "t10k-labels-idx1-ubyte", labels[:9], compress=compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_raw_and_gzip(tmp_path: Path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "images", images, compress=compress)

    result = read_idx(path, IMAGES_MAGIC)

    np.testing.assert_array_equal(result, images)


def test_read_idx_gzip_under_raw_name(tmp_path: Path) -> None:
    labels = np.array([1, 2, 3], dtype=np.uint8)
    compressed = write_idx(tmp_path / "labels", labels, compress=True)
    raw_name = compressed.rename(tmp_path / "labels")

    np.testing.assert_array_equal(read_idx(raw_name, LABELS_MAGIC), labels)


def test_read_idx_wrong_magic(tmp_path: Path) -> None:
    labels = write_idx(tmp_path / "labels", np.array([1, 2], dtype=np.uint8))

    with pytest.raises(
        DatasetError,
        match=r"has magic number 0x00000801, but an MNIST image file starts with 0x00000803",
    ):
        read_idx(labels, IMAGES_MAGIC)


def test_read_idx_truncated(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "images", np.zeros((2, 3, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-5])

    with pytest.raises(DatasetError, match=r"is truncated or padded: its header gives shape"):
        read_idx(path, IMAGES_MAGIC)


@pytest.mark.parametrize("compress", [False, True])
def test_check_mnist_folder_passes(tmp_path: Path, compress: bool) -> None:
    write_mnist_folder(tmp_path, compress=compress)

    check_objective("cnn", {"dataset": "mnist", "data_dir": str(tmp_path)})


def test_check_mnist_folder_without_idx_files(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not a dataset")

    with pytest.raises(
        DatasetError,
        match=rf"^dataset folder {tmp_path} has no IDX files: expected "
        r"train-images-idx3-ubyte\[\.gz\] and train-labels-idx1-ubyte\[\.gz\]$",
    ):
        check_objective("cnn", {"dataset": "fashion_mnist", "data_dir": str(tmp_path)})


def test_check_mnist_folder_missing_labels(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()

    with pytest.raises(DatasetError, match=r"has no train-labels-idx1-ubyte\[\.gz\]: expected"):
        check_objective("cnn", {"dataset": "mnist", "data_dir": str(tmp_path)})


def test_check_mnist_folder_suggests_torchvision_layout(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "MNIST" / "raw")

    with pytest.raises(DatasetError, match=r"did you mean data_dir: .*MNIST/raw\?"):
        check_objective("cnn", {"dataset": "mnist", "data_dir": str(tmp_path)})


def test_check_mnist_folder_bad_magic(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"<html>not found</html>")

    with pytest.raises(DatasetError, match=r"has magic number 0x3c68746d, but an MNIST image"):
        check_objective("cnn", {"dataset": "mnist", "data_dir": str(tmp_path)})


def test_check_mnist_folder_count_mismatch(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))

    with pytest.raises(DatasetError, match=r"disagree: 30 images but 5 labels"):
        check_objective("cnn", {"dataset": "mnist", "data_dir": str(tmp_path)})


def test_load_mnist_folder_adds_t10k(tmp_path: Path) -> None:
    images, labels = write_mnist_folder(tmp_path, compress=True, with_t10k=True)

    x, y = load_idx_folder(tmp_path)

    assert x.shape == (39, 1, 28, 28)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[:30, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y[30:], labels[:9])


def test_check_npz_passes(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((4, 1, 5, 5)), y=np.arange(4))

    check_objective("cnn", {"dataset": "npz", "path": str(path)})


def test_check_npz_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, images=np.zeros((4, 5, 5)), y=np.arange(4))

    with pytest.raises(DatasetError, match=r"has no array 'x' \(it has images, y\): save"):
        check_objective("cnn", {"dataset": "npz", "path": str(path)})


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((4, 3, 5, 5)), np.arange(4), r"x must have shape \(N, H, W\) or \(N, 1, H, W\)"),
        (np.zeros((4, 5, 5)), np.zeros(4), r"y must be a 1-D array of integer labels"),
        (np.zeros((4, 5, 5)), np.arange(3), r"x has 4 images but y has 3 labels"),
    ],
)
def test_check_npz_bad_arrays(tmp_path: Path, x: np.ndarray, y: np.ndarray, message: str) -> None:
    path = tmp_path / "data.npz"
    np.savez_compressed(path, x=x, y=y)

    with pytest.raises(DatasetError, match=message):
        check_objective("cnn", {"dataset": "npz", "path": str(path)})


def test_check_npz_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_text("x,y\n")

    with pytest.raises(DatasetError, match=r"is not a valid \.npz archive"):
        check_objective("cnn", {"dataset": "npz", "path": str(path)})


def test_check_npz_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"npz file .*missing\.npz not found"):
        check_objective("cnn", {"dataset": "npz", "path": str(tmp_path / "missing.npz")})


def test_load_npz_scales_and_relabels(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.full((3, 4, 4), 255, dtype=np.uint8), y=np.array([7, 3, 7]))

    x, y = load_npz(path)

    assert x.shape == (3, 1, 4, 4)
    assert float(x.max()) == 1.0
    np.testing.assert_array_equal(y, [1, 0, 1])


def test_load_digits_scaled() -> None:
    x, y = load_digits()

    assert x.shape == (1797, 1, 8, 8)
    assert float(x.min()) == 0.0
    assert float(x.max()) == 1.0
    assert set(y.tolist()) == set(range(10))


def test_split_is_stratified_and_seeded() -> None:
    x, y = load_digits()

    first = split_dataset(x, y, seed=3, val_fraction=0.2, test_fraction=0.2, source="digits")
    second = split_dataset(x, y, seed=3, val_fraction=0.2, test_fraction=0.2, source="digits")

    assert len(first.y_val) == pytest.approx(0.2 * len(y), abs=1)
    assert len(first.y_test) == pytest.approx(0.2 * len(y), abs=1)
    assert len(first.y_train) + len(first.y_val) + len(first.y_test) == len(y)
    np.testing.assert_array_equal(first.y_val, second.y_val)
    assert np.bincount(first.y_val).min() >= 30
    assert first.num_classes == 10


def test_split_too_small(tmp_path: Path) -> None:
    x = np.zeros((4, 1, 5, 5), dtype=np.float32)
    y = np.array([0, 0, 0, 1])

    with pytest.raises(DatasetError, match=r"cannot be split into stratified train"):
        split_dataset(x, y, seed=0, val_fraction=0.2, test_fraction=0.2, source="tiny.npz")
