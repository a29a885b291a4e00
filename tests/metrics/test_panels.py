import pytest
import torch

from ami.metrics import labelled_strip
from ami.metrics.panels import MAX_UPSCALE, _bar_height


def frames(count: int, size: int = 84) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size, generator=generator) for _ in range(count)]


def test_a_world_model_strip_is_scaled_up_so_its_captions_fit_and_keeps_every_pixel() -> None:
    images = frames(4)
    labels = ["observation", "reconstruction", "predicted next", "real next"]
    strip = labelled_strip(images, labels)
    bar = _bar_height()
    assert strip.shape == (3, bar + 84 * 2, 4 * 84 * 2), "84 px is too narrow: scaled twice"
    assert strip.dtype == torch.float32
    for index, image in enumerate(images):
        panel = strip[:, bar:, index * 168 : (index + 1) * 168]
        assert torch.equal(panel[:, ::2, ::2], image), "each pixel becomes an exact 2x2 block"
        assert torch.equal(panel[:, 1::2, 1::2], image)


def test_each_caption_is_drawn_in_its_own_panels_bar() -> None:
    images = frames(2, size=64)
    strip = labelled_strip(images, ["observation", "reconstruction"])
    swapped = labelled_strip(images, ["reconstruction", "observation"])
    blank = labelled_strip(images, ["", ""])
    bar = _bar_height()
    width = strip.shape[2] // 2
    for index in range(2):
        caption = strip[:, :bar, index * width : (index + 1) * width]
        assert caption.max() > 0.9, f"panel {index}: white text on the black bar"
        assert not torch.equal(caption, swapped[:, :bar, index * width : (index + 1) * width])
    assert blank.shape[2] == 2 * 64, "no caption to fit: no scaling"
    assert blank[:, :bar, 1:64].max() == 0, "an empty label leaves its bar blank"
    assert torch.equal(strip[:, bar:], swapped[:, bar:]), "captions never touch the panels"


def test_wide_panels_are_not_scaled() -> None:
    images = [torch.full((3, 40, 200), 0.5), torch.zeros(3, 40, 120)]
    strip = labelled_strip(images, ["observation", "real next"])
    assert strip.shape == (3, _bar_height() + 40, 320)
    assert torch.equal(strip[:, _bar_height() :, :200], images[0])


def test_tiny_panels_are_scaled_at_most_max_upscale_and_still_captioned() -> None:
    images = [torch.ones(3, 4, 4)]
    strip = labelled_strip(images, ["a rather long caption for four pixels"])
    assert strip.shape == (3, _bar_height() + 4 * MAX_UPSCALE, 4 * MAX_UPSCALE)
    assert strip[:, : _bar_height()].max() > 0.5, "a smaller font, but the text is there"


def test_panels_on_another_dtype_or_out_of_range_come_back_as_cpu_floats_in_0_1() -> None:
    image = torch.linspace(-1, 2, 3 * 100 * 100).reshape(3, 100, 100).half()
    strip = labelled_strip([image], ["prediction"])
    assert strip.dtype == torch.float32
    assert strip.min() >= 0 and strip.max() <= 1


def test_one_label_per_panel_is_required() -> None:
    with pytest.raises(ValueError, match=r"2 images but 1 labels \(\['observation'\]\)"):
        labelled_strip(frames(2), ["observation"])
    with pytest.raises(ValueError, match="no panels"):
        labelled_strip([], [])


def test_panels_of_a_wrong_shape_or_height_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match=r"panel 1 \('b'\) must be \(3, H, W\), got \(84, 84\)"):
        labelled_strip([torch.zeros(3, 84, 84), torch.zeros(84, 84)], ["a", "b"])
    with pytest.raises(ValueError, match=r"share one height, got shapes \[\(3, 84, 84\), \(3, 64"):
        labelled_strip([torch.zeros(3, 84, 84), torch.zeros(3, 64, 84)], ["a", "b"])


def test_a_label_opencv_cannot_draw_is_refused() -> None:
    with pytest.raises(ValueError, match="label 'prédiction' must be printable ASCII"):
        labelled_strip(frames(1), ["prédiction"])
