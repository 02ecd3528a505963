import re

import numpy as np
import pytest
from PIL import Image

from lightning_digits.data.images import load_digit
from lightning_digits.evaluation.rendered import FAMILIES, FORMATS, installed_families, render_digit, write_rendered_set

from .conftest import REPO

INSTALLED = installed_families()
needs_fonts = pytest.mark.skipif(
    len(INSTALLED) < 2, reason="the Debian font packages are not installed: `make fonts` (needs apt-get)"
)

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


def test_every_font_package_is_installed_by_the_makefile():
    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^FONT_PACKAGES := (.*?)\n\S", makefile, re.S | re.M).group(1).replace("\\", " ").split()
    assert {f.package for f in FAMILIES} == set(listed)


def test_the_two_parts_share_no_family_and_each_has_handwriting():
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    for part in ("choose", "report"):
        packages = {f.package for f in FAMILIES if f.part == part}
        assert {"fonts-bwht", "fonts-dejavu-core", "fonts-liberation"} <= packages, part


@needs_fonts
def test_an_image_is_the_same_every_time_and_differs_from_its_neighbours():
    family = INSTALLED[0]

    def scan(index: int, seed: int) -> tuple:
        drawn = render_digit(family, 7, index, seed)
        return np.asarray(drawn.image).tobytes(), drawn.image.size, drawn.suffix, drawn.options

    first = scan(3, seed=0)
    assert scan(3, seed=0) == first
    assert scan(4, seed=0) != first
    assert scan(3, seed=1) != first


@needs_fonts
def test_a_familys_images_do_not_depend_on_the_other_families(tmp_path):
    alone = write_rendered_set(tmp_path / "a", INSTALLED[:1], per_class=1)
    together = write_rendered_set(tmp_path / "b", INSTALLED[:2], per_class=1)
    assert [d.path.read_bytes() for d in alone] == [d.path.read_bytes() for d in together[: len(alone)]]


@needs_fonts
def test_images_look_like_scans_and_read_as_digits(tmp_path):
    """Dark ink on light paper, 40-220 px, every format, each one readable through load_digit (predict's path)."""
    written = write_rendered_set(tmp_path, INSTALLED[:3], per_class=2)
    assert len(written) == 3 * 10 * 2
    assert {d.path.suffix[1:] for d in written} == set(FORMATS)
    for digit in written:
        assert digit.path.parent.name == str(digit.label) and digit.path.parent.parent.name == digit.family
        with Image.open(digit.path) as image:
            assert 40 <= min(image.size) and max(image.size) <= 220
            gray = np.asarray(image.convert("L"), dtype=np.float64)
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        assert np.median(border) > 150 and gray.min() < np.median(border) - 60, digit.path
        mnist_like = load_digit(digit.path)
        assert mnist_like.shape == (28, 28) and mnist_like.max() > 0.5


@needs_fonts
def test_a_set_by_class_is_a_folder_extra_dir_reads(tmp_path):
    from lightning_digits.data.extra import read_extra_dir

    written = write_rendered_set(tmp_path, INSTALLED[:2], per_class=1, by_family=False)
    extra = read_extra_dir(tmp_path)
    assert sorted(extra.labels.tolist()) == sorted(d.label for d in written) == sorted(list(range(10)) * 2)


PEN = [f for f in INSTALLED if f.source == "pen"]
needs_pen = pytest.mark.skipif(not PEN, reason="Debian's hershey-fonts-data is not installed: `make fonts`")


@needs_pen
def test_a_hershey_glyph_is_read_as_its_pen_strokes():
    from lightning_digits.evaluation.drawn import HERSHEY, hershey_strokes

    [one] = hershey_strokes(HERSHEY / "futural.jhf", "1")  # a flag and the upright, one stroke
    assert one.tolist() == [[-4, -8], [-2, -9], [1, -12], [1, 9]]
    seven = hershey_strokes(HERSHEY / "futural.jhf", "7")  # the pen is lifted once
    assert [s.tolist() for s in seven] == [[[7, -12], [-3, 9]], [[-7, -12], [7, -12]]]


@needs_pen
def test_a_pen_digit_is_the_pages_pad_with_the_pages_pen_and_reads_as_a_digit(tmp_path):
    from lightning_digits.evaluation.drawn import HERSHEY, PAD_SIDE, PEN_WIDTH, draw_digit

    family = PEN[0]
    drawn = render_digit(family, 1, 0)
    assert drawn.suffix == "png" and drawn.image.size == (PAD_SIDE, PAD_SIDE)
    assert np.asarray(render_digit(family, 1, 0).image).tobytes() == np.asarray(drawn.image).tobytes()
    pad = np.asarray(drawn.image, dtype=np.float64)
    border = np.concatenate([pad[0], pad[-1], pad[:, 0], pad[:, -1]])
    assert border.min() == 255 and pad.min() == 0  # white paper all round, black ink
    # The pen is the page's whatever the size drawn: across the upright of a 1, the ink is one pen wide (a
    # little wider where the hand slants it).
    for seed in range(3):
        pad = np.asarray(draw_digit(HERSHEY / "futural.jhf", 1, np.random.default_rng(seed)), dtype=np.float64)
        rows = np.nonzero((pad < 128).any(axis=1))[0]
        middle = pad[(rows.min() + rows.max()) // 2]
        assert PEN_WIDTH - 2 <= (middle < 128).sum() <= 1.6 * PEN_WIDTH
    written = write_rendered_set(tmp_path, PEN[:1], per_class=1)
    assert [d.source for d in written] == ["pen"] * 10
    for digit in written:
        assert load_digit(digit.path).max() > 0.5
