"""The IDX reader and finding the data's files: every way a data file can be wrong, named in one line. The
CLI's turning such an error into its one line on stderr is shown once, in test_errors.py."""

import gzip

import numpy as np
import pytest

from lightning_digits.data.idx import read_idx, read_images_and_labels, read_shape, write_idx
from lightning_digits.data.sources import DATASETS, find_split, resolve_data_dir
from lightning_digits.errors import UserError

from .conftest import synthetic_digits, write_dataset

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_write_then_read_gives_the_same_array(tmp_path, name):
    images, _ = synthetic_digits(7, seed=3)
    write_idx(tmp_path / name, images)
    np.testing.assert_array_equal(read_idx(tmp_path / name, expected_dims=3), images)


@pytest.mark.parametrize(
    "written, read_as, message",
    [
        (np.zeros(5, np.uint8), 3, "magic number 0x00000801, expected 0x00000803"),  # labels where images belong
        (np.zeros((5, 28, 28), np.uint8), 1, "magic number 0x00000803, expected 0x00000801"),  # and the reverse
    ],
)
def test_wrong_magic_number_is_named(tmp_path, written, read_as, message):
    write_idx(tmp_path / "file.gz", written)
    with pytest.raises(UserError, match=f"file.gz: {message}.*is it the right file"):
        read_idx(tmp_path / "file.gz", expected_dims=read_as)


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_the_header_alone_gives_the_shape(tmp_path, name):
    """evaluate counts the training images this way: the header, not the 47 MB behind it."""
    images, _ = synthetic_digits(7, seed=3)
    write_idx(tmp_path / name, images)
    path = tmp_path / name
    path.write_bytes(path.read_bytes() if name.endswith(".gz") else path.read_bytes()[:16])  # the header only
    assert read_shape(path, expected_dims=3) == (7, 28, 28)
    with pytest.raises(UserError, match="magic number 0x00000803, expected 0x00000801"):
        read_shape(path, expected_dims=1)


def test_truncated_file_says_how_many_bytes(tmp_path):
    images, _ = synthetic_digits(4, seed=0)
    write_idx(tmp_path / "images", images)
    data = (tmp_path / "images").read_bytes()
    (tmp_path / "images").write_bytes(data[:-10])
    with pytest.raises(UserError, match=r"truncated or corrupt"):
        read_idx(tmp_path / "images", expected_dims=3)


def _gzip_header_then_garbage(data: bytes) -> bytes:
    return b"\x1f\x8b" + b"not gzip at all"


def _gzip_stream_damaged(data: bytes) -> bytes:
    return data[:30] + b"\x00" * 50  # a real gzip header, then the deflate stream overwritten


@pytest.mark.parametrize("damage", [_gzip_header_then_garbage, _gzip_stream_damaged])
def test_corrupt_gzip_is_reported(tmp_path, damage):
    images, _ = synthetic_digits(4, seed=0)
    write_idx(tmp_path / "images.gz", images)
    (tmp_path / "images.gz").write_bytes(damage((tmp_path / "images.gz").read_bytes()))
    with pytest.raises(UserError, match="images.gz: cannot read it .*corrupt: download it again"):
        read_idx(tmp_path / "images.gz", expected_dims=3)


def test_counts_must_agree(tmp_path):
    images, labels = synthetic_digits(6, seed=0)
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", labels[:5])
    with pytest.raises(UserError, match="has 6 images but .* has 5 labels"):
        read_images_and_labels(tmp_path / "i.gz", tmp_path / "l.gz")


def test_labels_outside_0_to_9_are_refused(tmp_path):
    images, labels = synthetic_digits(6, seed=0)
    labels[4] = 12
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", labels)
    with pytest.raises(UserError, match="l.gz: label 12 at index 4; labels must be 0-9"):
        read_images_and_labels(tmp_path / "i.gz", tmp_path / "l.gz")


def test_raw_files_in_torchvision_layout_are_found(tmp_path):
    write_dataset(tmp_path / "MNIST" / "raw", gz=False)
    images, labels = find_split(tmp_path, "test", DATASETS["mnist"])
    assert images.name == "t10k-images-idx3-ubyte" and images.parent.name == "raw"
    assert resolve_data_dir("mnist", str(tmp_path), download=False) == tmp_path


def test_missing_files_without_download_name_folder_files_and_fixes(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError) as error:
        resolve_data_dir("mnist", str(tmp_path), download=False)
    message = str(error.value)
    assert str(tmp_path) in message and "t10k-labels-idx1-ubyte" in message
    assert "train-images" not in message  # only what is missing
    assert "--data.data_dir" in message and "LIGHTNING_DIGITS_DATA" in message and "--data.download" in message
    assert "\n" not in message


def test_data_folder_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(UserError, match=f"mnist files not found in {tmp_path / 'nowhere'}"):
        resolve_data_dir("mnist", str(tmp_path / "nowhere"), download=False)


def test_environment_variable_points_at_the_data(tmp_path, monkeypatch):
    write_dataset(tmp_path / "elsewhere")
    monkeypatch.setenv("LIGHTNING_DIGITS_DATA", str(tmp_path / "elsewhere"))
    assert resolve_data_dir("mnist", None, download=False) == tmp_path / "elsewhere"


def test_gzip_and_raw_read_the_same(tmp_path):
    images, _ = synthetic_digits(3, seed=2)
    write_idx(tmp_path / "a", images)
    (tmp_path / "b.gz").write_bytes(gzip.compress((tmp_path / "a").read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "a", 3), read_idx(tmp_path / "b.gz", 3))
