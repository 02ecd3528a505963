import pytest
import torch

from lightning_digits.errors import UserError
from lightning_digits.models.cnn import Architecture, DigitsCNN, Dropout
from lightning_digits.models.lit import LitDigits

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


def test_default_network_has_the_originals_size():
    assert sum(p.numel() for p in DigitsCNN().parameters()) == 871_530


@pytest.mark.parametrize("kwargs", [{}, {"channels": (16, 32, 64), "hidden": 0, "global_pool": True}])
def test_logits_shape(kwargs):
    net = DigitsCNN(Architecture(**kwargs)).eval()
    assert net(torch.rand(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize("p", [0.25, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_each_activation_with_probability_1_minus_p_and_scales_it(p, dtype):
    x = (torch.rand(64, 8, 14, 13) + 1).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = Dropout(p).train()(x)
    kept = y != 0
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01  # 93,184 draws: 5 standard deviations is 0.008
    torch.testing.assert_close(y[kept], (x[kept] / (1 - p)).to(dtype))
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, kept.to(dtype) / (1 - p))


def test_dropout_is_seeded_by_torch_and_off_in_eval():
    x, dropout = torch.rand(4, 100), Dropout(0.5)

    def draw_from_seed_0() -> torch.Tensor:
        torch.manual_seed(0)
        return dropout(x)

    first = draw_from_seed_0()
    assert torch.equal(first, draw_from_seed_0()) and not torch.equal(first, dropout(x))
    assert torch.equal(dropout.eval()(x), x)


def test_normalisation_is_inside_the_model():
    net = DigitsCNN()
    assert torch.allclose(net.mean, torch.tensor(0.1307)) and "mean" in net.state_dict()


@pytest.mark.filterwarnings("ignore:.*self.trainer.*reference is not registered")
def test_training_step_returns_a_scalar_loss_that_backpropagates():
    model = LitDigits(channels=(8, 16), hidden=16)
    loss = model.training_step([torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])], 0)
    loss.backward()
    assert loss.ndim == 0 and model.net.classifier[-1].weight.grad is not None


def test_predict_step_gives_probabilities_per_input():
    model = LitDigits(channels=(8, 16), hidden=16).eval()
    out = model.predict_step([torch.rand(3, 1, 28, 28), torch.tensor([5, 6, 7])], 0)
    assert torch.equal(out["index"], torch.tensor([5, 6, 7]))
    assert torch.allclose(out["probabilities"].sum(dim=1), torch.ones(3))


@pytest.mark.parametrize("kwargs", [{"lr": -0.1}, {"label_smoothing": 1.5}, {"channels": ()}, {"dense_dropout": 1.0}])
def test_out_of_range_hyperparameters_are_refused(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(UserError, match=rf"model\.{name} must be .*, got"):
        LitDigits(**kwargs)


def test_hyperparameters_are_plain_values():
    """Checkpoints must load with torch's weights_only=True: no callables or modules in hparams."""
    allowed = (int, float, str, bool, tuple, type(None))
    assert all(isinstance(v, allowed) for v in LitDigits().hparams.values())


def test_an_unknown_view_set_is_named_the_same_way_as_for_evaluate():
    with pytest.raises(UserError, match="tta 'sideways' is not a view set; choose one of none, shifts"):
        LitDigits(tta="sideways")
