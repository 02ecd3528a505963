import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lightning_digits.data import images as images_module
from lightning_digits.data.idx import read_idx
from lightning_digits.data.images import find_images, load_digit
from lightning_digits.errors import UserError

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


def draw_seven(size: tuple[int, int] = (300, 300), box: tuple[int, int, int, int] = (60, 50, 240, 250)) -> Image.Image:
    """Dark ink on light paper, the way people write."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    width = max(1, (right - left) // 8)
    draw.line([(left, top), (right, top), (left + (right - left) // 3, bottom)], fill=0, width=width)
    return image


def save(image: Image.Image, path) -> str:
    image.save(path)
    return str(path)


@pytest.fixture
def reference(tmp_path):
    return load_digit(save(draw_seven(), tmp_path / "ref.png"))


def test_output_is_mnist_shaped_white_on_black_and_centred(reference):
    assert reference.shape == (28, 28) and reference.dtype == np.float32
    assert 0.0 <= reference.min() and reference.max() <= 1.0
    assert reference[0].max() == 0 and reference[:, 0].max() == 0  # dark border, like MNIST
    ys, xs = np.indices(reference.shape)
    total = reference.sum()
    assert abs((ys * reference).sum() / total - 14.0) <= 0.5
    assert abs((xs * reference).sum() / total - 14.0) <= 0.5
    rows, cols = np.nonzero(reference > 0.05)
    assert max(np.ptp(rows), np.ptp(cols)) <= 21  # fitted in a 20x20 box


def test_inverted_image_gives_the_same_input(tmp_path, reference):
    inverted = Image.eval(draw_seven(), lambda v: 255 - v)
    np.testing.assert_allclose(load_digit(save(inverted, tmp_path / "inv.png")), reference, atol=1e-5)


def test_off_centre_digit_is_centred(tmp_path, reference):
    off = draw_seven(size=(900, 700), box=(20, 10, 200, 210))
    assert np.abs(load_digit(save(off, tmp_path / "off.png")) - reference).max() < 0.02


def test_rgba_with_transparent_paper(tmp_path, reference):
    ink = draw_seven()
    rgba = Image.new("RGBA", ink.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(ink, lambda v: 255 - v))  # black ink where drawn, transparent elsewhere
    np.testing.assert_allclose(load_digit(save(rgba, tmp_path / "rgba.png")), reference, atol=1e-5)


def test_rgb_jpeg_and_bmp(tmp_path, reference):
    rgb = draw_seven().convert("RGB")
    assert np.abs(load_digit(save(rgb, tmp_path / "d.jpg")) - reference).max() < 0.1
    np.testing.assert_allclose(load_digit(save(rgb, tmp_path / "d.bmp")), reference, atol=1e-5)


def test_sixteen_bit_and_palette_pngs(tmp_path, reference):
    sixteen = Image.fromarray(np.asarray(draw_seven(), dtype=np.uint16) * 257)
    assert sixteen.mode.startswith("I")
    np.testing.assert_allclose(load_digit(save(sixteen, tmp_path / "16.png")), reference, atol=1e-4)
    palette = draw_seven().convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert np.abs(load_digit(save(palette, tmp_path / "p.png")) - reference).max() < 0.05


@pytest.mark.parametrize("size", [(6, 6), (3000, 2000)])
def test_tiny_and_large_images(tmp_path, size):
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).rectangle([size[0] // 3, size[1] // 4, size[0] // 2, size[1] * 3 // 4], fill=0)
    digit = load_digit(save(image, tmp_path / "x.png"))
    assert digit.shape == (28, 28) and digit.max() > 0.5


def test_real_mnist_digit_scaled_up_on_paper_comes_back(tmp_path, real_mnist):
    original = read_idx(real_mnist / "t10k-images-idx3-ubyte.gz", 3)[0].astype(np.float32) / 255
    paper = Image.fromarray((255 - original * 255).astype(np.uint8)).resize((280, 280), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (500, 400), 255)
    canvas.paste(paper, (150, 30))
    recovered = load_digit(save(canvas, tmp_path / "m.png"))
    assert np.corrcoef(recovered.ravel(), original.ravel())[0, 1] > 0.9


def _white_seven_on_black() -> np.ndarray:
    return 1 - np.asarray(draw_seven((60, 60), (12, 10, 48, 50)), dtype=np.float64) / 255


@pytest.mark.parametrize(
    ("case", "photo"),
    [
        ("white ink on mid-grey paper, as MNIST-C's brightness", lambda digit: 0.5 + digit / 2),
        ("dark ink on dim paper", lambda digit: 0.4 * (1 - digit)),
        # The brighter patch covers most of the page, far more pixels than the ink, at a weaker contrast.
        (
            "dark ink on paper lit brighter inside the border",
            lambda digit: (
                np.where(digit > 0, 0.6 * (1 - digit), 0.6) + np.pad(np.full((50, 50), 0.25), 5) * (digit == 0)
            ),
        ),
    ],
)
def test_the_ink_is_the_side_of_the_paper_with_the_strongest_contrast(case, photo):
    digit = _white_seven_on_black()
    assert np.allclose(images_module.to_mnist(photo(digit)), images_module.to_mnist(digit), atol=1e-5), case


def test_blank_image_is_refused(tmp_path):
    with pytest.raises(UserError, match="no ink"):
        load_digit(save(Image.new("L", (50, 50), 255), tmp_path / "blank.png"))


def test_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "MAX_PIXELS", 100 * 100)
    with pytest.raises(UserError, match="above the limit"):
        load_digit(save(draw_seven(size=(101, 100)), tmp_path / "big.png"))


@pytest.mark.parametrize("mode", ["L", "P", "I;16"])
def test_a_large_image_is_shrunk_while_it_decodes_to_the_same_digit(tmp_path, monkeypatch, mode):
    large = draw_seven(size=(3000, 3000), box=(600, 500, 2400, 2500))
    large = large.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(large).astype(np.uint16) * 257)
    path = save(large, tmp_path / "large.png")
    tracemalloc.start()
    shrunk = load_digit(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    monkeypatch.setattr(images_module, "MAX_SIDE", 10_000)
    assert np.abs(shrunk - load_digit(path)).max() < 0.05  # what it would be, read at full size
    assert peak < 40e6, peak  # at full size, each float64 array of a 3000x3000 image takes 72 MB


def test_a_large_jpeg_decodes_at_a_fraction_of_its_size(tmp_path):
    path = save(draw_seven(size=(4000, 3000), box=(800, 500, 3200, 2500)).convert("RGB"), tmp_path / "large.jpg")
    with images_module.open_image(Path(path), "large.jpg") as image:
        assert image.size == (2000, 1500)  # JPEG's 1/2 scale: the smallest that still covers MAX_SIDE
        assert images_module.decode_digit(image, "large.jpg").shape == (28, 28)


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="broken.png: cannot read it as an image"):
        load_digit(tmp_path / "broken.png")


def test_folder_listing_skips_other_files_with_a_notice(tmp_path, notices):
    save(draw_seven(), tmp_path / "b.png")
    save(draw_seven(), tmp_path / "a.JPG")
    (tmp_path / "notes.txt").write_text("hi")
    save(draw_seven(), tmp_path / ".b.png.k2x9f.png")  # an atomic writer's temporary file, its writer killed
    found = find_images(str(tmp_path))
    assert [p.name for p in found] == ["a.JPG", "b.png"]
    assert f"skipping {tmp_path / 'notes.txt'}: not a" in notices()
    assert [p.name for p in find_images(str(tmp_path / "*.png"))] == ["b.png"]


def test_no_images_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no images found"):
        find_images(str(tmp_path))
