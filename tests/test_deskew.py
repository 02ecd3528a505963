import pytest
import torch

from lightning_digits.models.cnn import Architecture, DigitsCNN
from lightning_digits.models.deskew import MAX_SHEAR, deskew


def _moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu11, mu02) of each image, in pixels."""
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = images.sum(dim=(1, 2, 3))
    cy, cx = (images * rows).sum(dim=(1, 2, 3)) / mass, (images * cols).sum(dim=(1, 2, 3)) / mass
    dy, dx = rows - cy[:, None, None, None], cols - cx[:, None, None, None]
    return (images * dx * dy).sum(dim=(1, 2, 3)) / mass, (images * dy * dy).sum(dim=(1, 2, 3)) / mass


def _leaning_bar(lean: float) -> torch.Tensor:
    """A two-pixel bar from row 4 to 23 whose top is `lean` pixels right of its bottom per row (negative: left)."""
    image = torch.zeros(1, 1, 28, 28)
    for row in range(4, 24):
        column = 14 + round((13.5 - row) * lean)
        image[0, 0, row, column - 1 : column + 1] = 1.0
    return image


@pytest.mark.unit
def test_an_upright_digit_is_left_as_it_is():
    ring = torch.zeros(1, 1, 28, 28)
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    ring[0, 0] = (((rows - 13.5) / 9) ** 2 + ((cols - 13.5) / 6) ** 2 - 1).abs().lt(0.25).float()  # an upright 0
    assert torch.allclose(deskew(ring), ring, atol=1e-5)
    assert torch.allclose(deskew(_leaning_bar(0.0)), _leaning_bar(0.0), atol=1e-5)


@pytest.mark.unit
@pytest.mark.parametrize("lean", [0.5, -0.4, 0.25])
def test_a_leaning_digit_is_stood_upright(lean):
    bar = _leaning_bar(lean)
    before, _ = _moments(bar)
    after, _ = _moments(deskew(bar))
    assert abs(before.item()) > 2.0 and abs(after.item()) < 0.05 * abs(before.item())
    columns = deskew(bar)[0, 0, 4:24].argmax(dim=1)
    assert columns.max() - columns.min() <= 1  # every row's ink in the same column, give or take the rounding
    assert deskew(bar).sum().item() == pytest.approx(bar.sum().item(), rel=0.02)  # no ink lost


@pytest.mark.unit
def test_a_flat_mark_is_sheared_no_more_than_45_degrees_and_a_blank_image_stays_blank():
    dash = torch.zeros(2, 1, 28, 28)
    dash[0, 0, 14, 6:22] = 1.0
    dash[0, 0, 13, 6:8] = 1.0  # a tiny hook makes mu11 / mu02 huge
    out = deskew(dash)
    assert torch.isfinite(out).all() and out[1].abs().max() == 0
    # Unclipped, the shear would be about 15 pixels per row; at MAX_SHEAR the hook one row up moves 1 pixel.
    assert out[0].sum().item() == pytest.approx(dash[0].sum().item(), rel=0.01)
    assert out[0, 0, 12:16].sum(dim=0).nonzero().min() >= 6 - 2 * MAX_SHEAR


@pytest.mark.unit
def test_the_network_with_deskew_classifies_the_deskewed_image():
    torch.manual_seed(0)
    plain, skewing = DigitsCNN(Architecture()), DigitsCNN(Architecture(deskew=True))
    skewing.load_state_dict(plain.state_dict())  # deskewing has no weights
    plain.eval(), skewing.eval()
    bars = torch.cat([_leaning_bar(0.5), _leaning_bar(-0.3)])
    assert torch.allclose(skewing(bars), plain(deskew(bars)), atol=1e-5)


def test_a_deskewing_network_exports_to_onnx_with_a_single_networks_contract(tmp_path):
    """Deskewing is in the graph, so the ONNX file (serve, the browser page, onnx_predictor) needs nothing more."""
    import onnxruntime as ort

    from lightning_digits.export import export_onnx

    torch.manual_seed(0)
    net = DigitsCNN(Architecture(channels=(8, 16), hidden=0, global_pool=True, deskew=True)).eval()
    bars = torch.cat([_leaning_bar(lean) for lean in (0.5, -0.4, 0.0, 0.25, -0.1, 0.3, 0.1)]).numpy()
    report = export_onnx(net, tmp_path / "d.onnx", [str(d) for d in range(10)], bars)  # raises on a mismatch
    assert report.batch_sizes == (1, 7)
    session = ort.InferenceSession(str(tmp_path / "d.onnx"))
    assert [i.name for i in session.get_inputs()] == ["image"] and session.get_inputs()[0].shape[1:] == [1, 28, 28]
