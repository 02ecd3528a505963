import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from lightning_digits.data.datamodule import DigitsDataModule
from lightning_digits.errors import UserError

from .conftest import write_dataset

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


def _setup(data_dir, stage="fit", **kwargs) -> DigitsDataModule:
    dm = DigitsDataModule(data_dir=str(data_dir), download=False, **kwargs)
    dm.prepare_data()
    dm.setup(stage)
    return dm


def test_seeded_split_is_disjoint_and_repeatable(tiny_data):
    a = _setup(tiny_data, val_size=50)
    b = _setup(tiny_data, val_size=50)
    assert len(a.train_set) == 250 and len(a.val_set) == 50
    assert torch.equal(a.val_set.tensors[0], b.val_set.tensors[0])
    c = _setup(tiny_data, val_size=50, split_seed=1)
    assert not torch.equal(a.val_set.tensors[0], c.val_set.tensors[0])


def test_real_mnist_split_sizes(real_mnist):
    dm = _setup(real_mnist)
    assert (len(dm.train_set), len(dm.val_set)) == (55_000, 5_000)
    dm.setup("test")
    assert len(dm.test_set) == 10_000 and dm.test_set.tensors[0].dtype == torch.uint8


def test_train_subset(tiny_data):
    assert len(_setup(tiny_data, val_size=50, train_subset=40).train_set) == 40


def test_train_loader_reads_whole_batches_as_the_per_item_loader_would(tiny_data):
    dm = _setup(tiny_data, val_size=50, batch_size=32)
    per_item = DataLoader(TensorDataset(*dm.train_set.tensors), batch_size=32, shuffle=True, drop_last=True)
    torch.manual_seed(3)
    batches = list(dm.train_dataloader())
    torch.manual_seed(3)
    expected = list(per_item)
    assert len(batches) == len(expected) == 250 // 32
    for (images, labels), (want_images, want_labels) in zip(batches, expected, strict=True):
        assert torch.equal(images, want_images) and torch.equal(labels, want_labels)


def test_batch_hook_scales_to_unit_range_and_adds_a_channel(tiny_data):
    dm = _setup(tiny_data, val_size=50)
    images, labels = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28)
    assert images.max() == 1.0 and images.min() >= 0.0
    assert labels.dtype == torch.int64


def test_predict_on_a_folder_of_images(tmp_path, tiny_data):
    folder = tmp_path / "drawn"
    folder.mkdir()
    for name in ("b.png", "a.png"):
        image = Image.new("L", (40, 60), 255)
        image.paste(0, (15, 10, 25, 50))
        image.save(folder / name)
    dm = _setup(tiny_data, stage="predict", predict_path=str(folder))
    assert [n.rsplit("/", 1)[1] for n in dm.predict_names] == ["a.png", "b.png"]
    assert dm.predict_set.tensors[0].shape == (2, 28, 28)


def test_predict_defaults_to_the_test_set(tiny_data):
    dm = _setup(tiny_data, stage="predict")
    assert len(dm.predict_names) == 100 and dm.predict_names[0] == "test[0]"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"batch_size": 0}, "batch_size"), ({"rotation": 400}, "rotation"), ({"train_subset": 0}, "train_subset")],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(UserError, match=f"data.{message}"):
        DigitsDataModule(**kwargs)


def test_val_size_larger_than_the_data(tmp_path):
    with pytest.raises(UserError, match="val_size"):
        _setup(write_dataset(tmp_path / "d", n_train=20), val_size=30)


def test_fashion_mnist_has_its_own_class_names(tiny_data):
    dm = DigitsDataModule(data_dir=str(tiny_data), dataset="fashion_mnist")
    assert dm.class_names[9] == "Ankle boot"


class _FakeTrainer:
    training = True

    def __init__(self, rank: int) -> None:
        self.global_rank = rank


def test_augmentation_draws_differ_between_ranks_but_the_split_does_not(tiny_data):
    """Under DDP every rank is seeded alike; its augmentation must still draw its own transforms."""
    batches = {}
    for rank in (0, 1):
        torch.manual_seed(42)  # what seed_everything does on every rank
        dm = _setup(tiny_data, val_size=50)
        dm.trainer = _FakeTrainer(rank)
        images = dm.train_set.tensors[0][:16]
        batches[rank] = (dm.on_after_batch_transfer([images, torch.zeros(16)], 0)[0], dm.val_set.tensors[0])
    assert not torch.equal(batches[0][0], batches[1][0])
    assert torch.equal(batches[0][1], batches[1][1])
