"""Device-resident data loaders: the training set lives on the device as ``uint8`` and every
batch is augmented there with a few vectorised tensor ops (no worker processes, no PIL).

Training augmentation is the standard CIFAR one and has the same distribution as torchvision's
``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()`` + ``ToTensor()`` + ``Normalize(mean,
std)``: each image is padded by 4 pixels (zeros on the raw ``uint8`` pixels, or reflection),
cropped back to its size at an offset drawn uniformly from ``{0..8} x {0..8}``, flipped
horizontally with probability 1/2, scaled to ``[0, 1]`` and normalised per channel.

The augmentation itself lives in :mod:`kdecay.data.augment`. All random numbers come from
the loader's own CPU ``torch.Generator`` (so results do not depend on the device), drawn once
per epoch: a permutation of the training set, the crop
offsets and the flips. ``state_dict()``/``load_state_dict()`` capture that generator, the
epoch counter and the position inside the epoch, so a resumed run sees exactly the batches an
uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from kdecay.checks import check_int
from kdecay.data.augment import (
    PADDING,
    Normalizer,
    PackedImages,
    check_crop_args,
    draw_augmentation,
    inside_mask,
)

__all__ = ["EvalLoader", "GpuLoader"]


def _check_inputs(images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty uint8 [N, C, H, W] tensor, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if tuple(labels.shape) != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    check_int(batch_size, "batch_size", low=1)


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
    (``N * H * (W + 1) * 4`` bytes, about 211 MB for CIFAR's 50,000 images), and while an
    epoch runs its crops are held the same way (``N * H * W * 4`` bytes, about 205 MB): they
    are cut for the whole epoch at its start, in one gather.

    Args:
        images: ``uint8 [N, C, H, W]`` training images (any device), ``C <= 4``.
        labels: ``int64 [N]`` labels.
        batch_size: samples per batch.
        mean: per-channel mean, ``[0, 1]`` pixel units.
        std: per-channel standard deviation, same units.
        device: where batches are made and returned.
        seed: seed of the loader's CPU generator (permutations, offsets, flips).
        padding_mode: ``"zeros"`` (black border), ``"mean"`` (mean-colour border: 0 after
            normalisation, as when normalising before padding) or ``"reflect"``.
        channels_last: return ``x`` in channels_last memory format.
        dtype: dtype of ``x`` (float32 by default; bfloat16/float16 possible).
        packed: the same ``images`` already packed on ``device`` by another loader
            (:attr:`packed`), shared instead of copied (the members of a fused group).
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
        packed: PackedImages | None = None,
    ) -> None:
        _check_inputs(images, labels, batch_size)
        check_crop_args(PADDING, padding_mode, images.shape[2], images.shape[3])
        if packed is not None and packed.num != len(images):
            raise ValueError(f"packed images of another set: {packed.num} != {len(images)}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.padding_mode = padding_mode
        self.channels_last = channels_last
        self.dtype = dtype
        self.seed = int(seed)
        self._images = packed if packed is not None else PackedImages(images, self.device)
        self._labels = labels.to(device=self.device, dtype=torch.int64)
        self._normalize = Normalizer(mean, std, images.shape[1], self.device, dtype, channels_last)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(self.seed)
        self.packed = self._images  # what another loader of the same set may share
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
        # the whole epoch's crops in one gather (a few large kernels instead of ~10 small ones
        # per batch); the batches are slices of it, bit-identical to cropping batch by batch
        crops = self._images.crop(perm, offsets, flips, PADDING, self.padding_mode)
        border = (  # crops are NHWC here
            ~inside_mask(offsets, flips, *crops.shape[1:3]) if self.padding_mode == "mean" else None
        )
        labels = self._labels[perm]
        n_batches = len(self)
        for b in range(start, n_batches):
            lo = b * self.batch_size
            hi = min(lo + self.batch_size, self.num_samples)
            x = self._normalize(crops[lo:hi])
            if border is not None:  # mean padding: the border is 0 after normalisation
                x.masked_fill_(border[lo:hi, None], 0.0)
            y = labels[lo:hi]
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
        self._normalize = Normalizer(mean, std, images.shape[1], self.device, dtype, channels_last)

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
