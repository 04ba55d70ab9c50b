"""Device-resident data loaders: the training set lives on the device as ``uint8`` and every
batch is augmented there with a few vectorised tensor ops (no worker processes, no PIL).

Training augmentation is the standard CIFAR one and has the same distribution as torchvision's
``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()`` + ``ToTensor()`` + ``Normalize(mean,
std)``: each image is padded by 4 pixels (zeros on the raw ``uint8`` pixels, or reflection),
cropped back to its size at an offset drawn uniformly from ``{0..8} x {0..8}``, flipped
horizontally with probability 1/2, scaled to ``[0, 1]`` and normalised per channel.

All random numbers come from the loader's own CPU ``torch.Generator`` (so results do not
depend on the device), drawn once per epoch: a permutation of the training set, the crop
offsets and the flips. ``state_dict()``/``load_state_dict()`` capture that generator, the
epoch counter and the position inside the epoch, so a resumed run sees exactly the batches an
uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

__all__ = [
    "PADDING",
    "EvalLoader",
    "GpuLoader",
    "augment",
    "crop_flip",
    "draw_augmentation",
    "normalize",
]

PADDING = 4
PADDING_MODES = ("zeros", "reflect")


def _check_padding_mode(padding_mode: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")


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
    if padding_mode == "reflect":
        src = src.abs()
        src = torch.where(src > size - 1, 2 * (size - 1) - src, src)
        return src, None
    return src, (src >= 0) & (src < size)


class _PackedImages:
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


def _check_crop_args(padding: int, padding_mode: str, height: int, width: int) -> None:
    _check_padding_mode(padding_mode)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
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

    This is the code path of :class:`GpuLoader`.

    Args:
        images: ``uint8 [B, C, H, W]`` (``C <= 4``).
        offsets: ``int64 [B, 2]`` crop offsets (row, column) in the padded image, each in
            ``0..2*padding``; offset ``padding`` is the identity crop.
        flips: ``bool [B]``, horizontal flip after the crop.
        padding: pixels of padding on each side (4 for CIFAR).
        padding_mode: ``"zeros"`` (constant 0 on the raw pixels) or ``"reflect"`` (mirror
            without repeating the edge, like ``torch.nn.functional.pad(mode="reflect")``).

    Returns:
        ``uint8 [B, C, H, W]``, NCHW-contiguous, on the images' device.
    """
    _check_crop_args(padding, padding_mode, images.shape[-2], images.shape[-1])
    packed = _PackedImages(images, images.device)
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


class _Normalizer:
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
    norm = _Normalizer(mean, std, images.shape[1], images.device, dtype, channels_last)
    return norm(images.permute(0, 2, 3, 1))


def _check_inputs(images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty uint8 [N, C, H, W] tensor, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if tuple(labels.shape) != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


class GpuLoader:
    """Training loader holding the whole training set on ``device`` as ``uint8``.

    Each epoch is a seeded random permutation of the training set cut into batches of
    ``batch_size`` (the last, partial batch is kept: every sample is seen exactly once per
    epoch). Each batch is augmented on the device with the same distribution as torchvision's
    ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()`` + ``ToTensor()`` +
    ``Normalize(mean, std)``; ``padding_mode="reflect"`` matches
    ``RandomCrop(32, padding=4, padding_mode="reflect")``.

    Iterating yields ``(x, y)``: ``x`` of ``dtype`` ``[B, 3, 32, 32]`` (channels_last memory
    layout if ``channels_last``), ``y`` ``int64 [B]``, both on ``device``. Only one iteration
    may be active at a time; breaking out of one and starting another resumes the interrupted
    epoch where it stopped.

    Device memory: the set is held packed, 4 bytes per pixel plus one zero pixel per row
    (``N * H * (W + 1) * 4`` bytes, about 211 MB for CIFAR's 50,000 images).

    Args:
        images: ``uint8 [N, C, H, W]`` training images (any device), ``C <= 4``.
        labels: ``int64 [N]`` labels.
        batch_size: samples per batch.
        mean: per-channel mean, ``[0, 1]`` pixel units.
        std: per-channel standard deviation, same units.
        device: where batches are made and returned.
        seed: seed of the loader's CPU generator (permutations, offsets, flips).
        padding_mode: ``"zeros"`` or ``"reflect"``.
        channels_last: return ``x`` in channels_last memory format.
        dtype: dtype of ``x`` (float32 by default; bfloat16/float16 possible).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        seed: int = 0,
        padding_mode: str = "zeros",
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        _check_inputs(images, labels, batch_size)
        _check_crop_args(PADDING, padding_mode, images.shape[2], images.shape[3])
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.padding_mode = padding_mode
        self.channels_last = channels_last
        self.dtype = dtype
        self.seed = int(seed)
        self._images = _PackedImages(images, self.device)
        self._labels = labels.to(device=self.device, dtype=torch.int64)
        self._normalize = _Normalizer(mean, std, images.shape[1], self.device, dtype, channels_last)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(self.seed)
        self._epoch = 0  # index of the current (or next) epoch
        self._batch = 0  # batches of the current epoch already yielded
        self._epoch_start_state = self._generator.get_state()

    @property
    def num_samples(self) -> int:
        """Number of training samples."""
        return len(self._labels)

    @property
    def epoch(self) -> int:
        """Number of completed epochs (an epoch counts as completed once its last batch has
        been handed out)."""
        return self._epoch

    def __len__(self) -> int:
        """Number of batches per epoch (the last one may be partial)."""
        return -(-self.num_samples // self.batch_size)

    def _draw_epoch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        perm = torch.randperm(self.num_samples, generator=self._generator)
        offsets, flips = draw_augmentation(self.num_samples, self._generator)
        return perm.to(self.device), offsets.to(self.device), flips.to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the ``(x, y)`` batches of one epoch (the rest of it after a resume)."""
        start = self._batch
        if start == 0:
            self._epoch_start_state = self._generator.get_state()
        else:  # resuming inside an epoch: replay its draws
            self._generator.set_state(self._epoch_start_state)
        perm, offsets, flips = self._draw_epoch()
        n_batches = len(self)
        for b in range(start, n_batches):
            lo = b * self.batch_size
            hi = min(lo + self.batch_size, self.num_samples)
            index = perm[lo:hi]
            crops = self._images.crop(
                index, offsets[lo:hi], flips[lo:hi], PADDING, self.padding_mode
            )
            x = self._normalize(crops)
            y = self._labels[index]
            # advance the position before yielding, so that a state_dict() taken while the
            # consumer holds this batch resumes with the next one
            if b + 1 == n_batches:
                self._epoch += 1
                self._batch = 0
            else:
                self._batch = b + 1
            yield x, y

    def state_dict(self) -> dict[str, Any]:
        """Generator state, epoch counter and position in the epoch (tensors and ints only,
        so ``torch.save`` / ``torch.load(weights_only=True)`` round-trip it)."""
        state = self._epoch_start_state if self._batch else self._generator.get_state()
        return {
            "epoch": self._epoch,
            "batch": self._batch,
            "generator_state": state.clone(),
            "seed": self.seed,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next iteration continues exactly where it was."""
        if (
            int(state["num_samples"]) != self.num_samples
            or int(state["batch_size"]) != self.batch_size
        ):
            raise ValueError(
                "loader state was saved for "
                f"{int(state['num_samples'])} samples in batches of {int(state['batch_size'])}, "
                f"this loader has {self.num_samples} in batches of {self.batch_size}"
            )
        generator_state = state["generator_state"]
        self._generator.set_state(generator_state.clone().cpu())
        self._epoch_start_state = self._generator.get_state()
        self._epoch = int(state["epoch"])
        self._batch = int(state["batch"])


class EvalLoader:
    """Evaluation batches: no augmentation, fixed order, normalised like :class:`GpuLoader`.

    The images are moved to ``device`` once as ``uint8``; iterating yields ``(x, y)`` with ``x``
    of ``dtype`` ``[B, C, H, W]`` (channels_last if asked) and ``y`` ``int64 [B]``.
    Equivalent to torchvision ``ToTensor()`` + ``Normalize(mean, std)``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        batch_size: int = 1000,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        _check_inputs(images, labels, batch_size)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.channels_last = channels_last
        self.dtype = dtype
        self._images = images.to(self.device).permute(0, 2, 3, 1).contiguous()  # [N, H, W, C]
        self._labels = labels.to(device=self.device, dtype=torch.int64)
        self._normalize = _Normalizer(mean, std, images.shape[1], self.device, dtype, channels_last)

    @property
    def num_samples(self) -> int:
        """Number of samples."""
        return len(self._labels)

    def __len__(self) -> int:
        """Number of batches (the last one may be partial)."""
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches in dataset order."""
        for lo in range(0, self.num_samples, self.batch_size):
            hi = lo + self.batch_size
            yield self._normalize(self._images[lo:hi]), self._labels[lo:hi]
