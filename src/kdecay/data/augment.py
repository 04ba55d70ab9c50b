"""Per-sample CIFAR augmentation as a few vectorised tensor ops: pad, crop, flip, normalise.

The distribution is that of torchvision's ``RandomCrop(32, padding=4)`` +
``RandomHorizontalFlip()`` + ``ToTensor()`` + ``Normalize(mean, std)``: each image is padded by
4 pixels (zeros on the raw ``uint8`` pixels, or reflection), cropped back to its size at an
offset drawn uniformly from ``{0..8} x {0..8}``, flipped horizontally with probability 1/2,
scaled to ``[0, 1]`` and normalised per channel. :mod:`kdecay.data.loader` builds its batches
from these pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kdecay.checks import check_choice, check_int
from kdecay.data.datasets import PADDING_MODES

__all__ = [
    "PADDING",
    "PADDING_MODES",
    "augment",
    "crop_flip",
    "draw_augmentation",
    "inside_mask",
    "normalize",
]

PADDING = 4


def _source_index(
    offsets: torch.Tensor, size: int, padding: int, padding_mode: str, reverse: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Source coordinates ``[B, size]`` of a crop at ``offsets`` ``[B]`` along one padded axis.

    Output position ``j`` reads padded position ``offset + j`` (``offset + size - 1 - j`` where
    ``reverse``), i.e. original position ``offset + j - padding``. Returns the reflected indices
    (``"reflect"``), or the raw indices and the mask of positions inside the image (``"zeros"``).
    """
    j = torch.arange(size, device=offsets.device)
    if reverse is not None:
        j = torch.where(reverse[:, None], size - 1 - j, j)
    src = offsets[:, None] - padding + j
    if padding_mode == "reflect":  # "zeros" and "mean" crop the same raw pixels
        src = src.abs()
        src = torch.where(src > size - 1, 2 * (size - 1) - src, src)
        return src, None
    return src, (src >= 0) & (src < size)


class PackedImages:
    """``uint8 [N, C, H, W]`` images (``C <= 4``) packed for fast vectorised crops.

    Every pixel is stored as one ``int32`` (its ``C`` bytes, zero-filled to 4), each image row
    gets one extra zero pixel at its end and one zero row follows the last image. A crop is then
    a single ``torch.take`` over flat indices ``row_part + col_part``: a column outside the image
    points at the zero pixel of its row and a row outside the image at the zero row, which is
    exactly zero padding; reflection just maps the indices back inside.
    """

    def __init__(self, images: torch.Tensor, device: torch.device) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or not 1 <= images.shape[1] <= 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W] with C <= 4, got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        n, c, h, w = images.shape
        self.num, self.channels, self.height, self.width = n, c, h, w
        self.row_stride = w + 1
        self.image_stride = h * self.row_stride
        self.zero_row = n * self.image_stride
        self.flat = torch.zeros(self.zero_row + self.row_stride, dtype=torch.int32, device=device)
        pixels = self.flat[: self.zero_row].view(torch.uint8).view(n, h, self.row_stride, 4)
        pixels[:, :, :w, :c] = images.to(device).permute(0, 2, 3, 1)

    def crop(
        self,
        index: torch.Tensor,
        offsets: torch.Tensor,
        flips: torch.Tensor,
        padding: int,
        padding_mode: str,
    ) -> torch.Tensor:
        """``uint8 [B, H, W, C]`` (a strided view) crops of samples ``index`` (see crop_flip)."""
        h, w = self.height, self.width
        rows, row_ok = _source_index(offsets[:, 0], h, padding, padding_mode, None)
        cols, col_ok = _source_index(offsets[:, 1], w, padding, padding_mode, flips)
        row_part = index[:, None] * self.image_stride + rows * self.row_stride
        if row_ok is not None and col_ok is not None:
            row_part = torch.where(row_ok, row_part, self.zero_row)
            cols = torch.where(col_ok, cols, w)  # the zero pixel ending every row
        flat_index = row_part[:, :, None] + cols[:, None, :]
        pixels = torch.take(self.flat, flat_index)  # int32 [B, H, W]
        return pixels.view(torch.uint8).view(len(index), h, w, 4)[..., : self.channels]


def inside_mask(
    offsets: torch.Tensor, flips: torch.Tensor, height: int, width: int, padding: int = PADDING
) -> torch.Tensor:
    """``bool [B, H, W]``: which pixels of the crops at ``offsets`` lie inside the image (the
    others are padding); flips do not move the border, only mirror it."""
    _, row_ok = _source_index(offsets[:, 0], height, padding, "zeros", None)
    _, col_ok = _source_index(offsets[:, 1], width, padding, "zeros", flips)
    assert row_ok is not None and col_ok is not None
    return row_ok[:, :, None] & col_ok[:, None, :]


def check_crop_args(padding: int, padding_mode: str, height: int, width: int) -> None:
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    check_int(padding, "padding", low=0)
    if padding_mode == "reflect" and padding >= min(height, width):
        raise ValueError(f"reflect padding {padding} needs images larger than {padding} pixels")


def crop_flip(
    images: torch.Tensor,
    offsets: torch.Tensor,
    flips: torch.Tensor,
    padding: int = PADDING,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Pad, crop at ``offsets`` and flip where ``flips``, vectorised (no loop over samples).

    :class:`GpuLoader` cuts a whole epoch at once through ``PackedImages.crop``; this
    per-batch form is the reference the loader tests compare it with.

    Args:
        images: ``uint8 [B, C, H, W]`` (``C <= 4``).
        offsets: ``int64 [B, 2]`` crop offsets (row, column) in the padded image, each in
            ``0..2*padding``; offset ``padding`` is the identity crop.
        flips: ``bool [B]``, horizontal flip after the crop.
        padding: pixels of padding on each side (4 for CIFAR).
        padding_mode: ``"zeros"`` (constant 0 on the raw pixels; ``"mean"`` crops the same
            raw pixels, its border becomes the mean colour at normalisation) or
            ``"reflect"`` (mirror without repeating the edge, like
            ``torch.nn.functional.pad(mode="reflect")``).

    Returns:
        ``uint8 [B, C, H, W]``, NCHW-contiguous, on the images' device.
    """
    check_crop_args(padding, padding_mode, images.shape[-2], images.shape[-1])
    packed = PackedImages(images, images.device)
    index = torch.arange(len(images), device=images.device)
    out = packed.crop(
        index, offsets.to(images.device), flips.to(images.device), padding, padding_mode
    )
    return out.permute(0, 3, 1, 2).contiguous()


def draw_augmentation(
    n: int, generator: torch.Generator, padding: int = PADDING
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` crop offsets (``int64 [n, 2]``, uniform in ``0..2*padding``) and flips
    (``bool [n]``, probability 1/2) from ``generator`` (a CPU generator); returned on the CPU."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator).bool()
    return offsets, flips


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    padding: int = PADDING,
    padding_mode: str = "zeros",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crop + horizontal flip of ``uint8 [B, C, H, W]`` images (no normalisation).

    Same distribution as torchvision ``RandomCrop(H, padding=padding)`` (with
    ``padding_mode="constant"``, fill 0, or ``"reflect"``) followed by
    ``RandomHorizontalFlip()``.

    Returns:
        ``(out, offsets, flips)``: augmented ``uint8 [B, C, H, W]`` NCHW-contiguous images, the
        ``int64 [B, 2]`` (row, column) crop offsets in the padded image and the ``bool [B]``
        flips, all on the images' device.
    """
    offsets, flips = draw_augmentation(len(images), generator, padding)
    offsets, flips = offsets.to(images.device), flips.to(images.device)
    out = crop_flip(images, offsets, flips, padding=padding, padding_mode=padding_mode)
    return out, offsets, flips


def _channel_tensor(values: Sequence[float], name: str, channels: int) -> torch.Tensor:
    """float64 CPU tensor of per-channel values, checked."""
    t = torch.as_tensor([float(v) for v in values], dtype=torch.float64)
    if t.shape != (channels,):
        raise ValueError(f"{name} must hold {channels} per-channel values, got {list(values)!r}")
    if name == "std" and bool((t <= 0).any()):
        raise ValueError(f"std must be positive, got {list(values)!r}")
    return t


class Normalizer:
    """``uint8`` pixels -> ``(x / 255 - mean) / std``, computed as ``x * scale + shift`` in
    float32 (scale and shift derived in float64), then cast to ``dtype``."""

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        channels: int,
        device: torch.device,
        dtype: torch.dtype,
        channels_last: bool,
    ) -> None:
        mean_t = _channel_tensor(mean, "mean", channels)
        std_t = _channel_tensor(std, "std", channels)
        # derived on the CPU in float64 (not every device has float64), used in float32
        self.scale = (1.0 / (255.0 * std_t)).float().to(device)
        self.shift = (-mean_t / std_t).float().to(device)
        self.dtype = dtype
        self.channels_last = channels_last

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, H, W, C]`` (any strides) -> ``dtype [B, C, H, W]``."""
        if self.channels_last:
            x = pixels.contiguous().to(torch.float32)
            x = x.mul_(self.scale).add_(self.shift).permute(0, 3, 1, 2)
        else:
            c = len(self.scale)
            x = pixels.permute(0, 3, 1, 2).contiguous().to(torch.float32)
            x = x.mul_(self.scale.view(1, c, 1, 1)).add_(self.shift.view(1, c, 1, 1))
        return x if self.dtype == torch.float32 else x.to(self.dtype)


def normalize(
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """``(images / 255 - mean) / std`` of ``uint8 [B, C, H, W]`` images, as ``dtype``.

    Same as torchvision ``ToTensor()`` + ``Normalize(mean, std)`` up to float rounding.
    ``mean``/``std`` are per channel in ``[0, 1]`` pixel units. The result is channels_last if
    requested, otherwise NCHW-contiguous.
    """
    norm = Normalizer(mean, std, images.shape[1], images.device, dtype, channels_last)
    return norm(images.permute(0, 2, 3, 1))
