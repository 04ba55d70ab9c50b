"""GpuLoader / EvalLoader on the CPU: augmentation equals torchvision's pad + crop + flip,
uniform offsets, fair flips, exact epoch coverage, determinism, resumable state, layouts."""

from __future__ import annotations

import io
import itertools

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from kdecay.data.augment import augment, crop_flip, draw_augmentation, normalize
from kdecay.data.loader import EvalLoader, GpuLoader

PAD = 4
MODES = ("zeros", "reflect")


def _reference(image: torch.Tensor, oy: int, ox: int, flip: bool, mode: str) -> torch.Tensor:
    """torchvision: pad by 4 (fill 0 or reflect), crop at (oy, ox), then maybe hflip."""
    tv_mode = "constant" if mode == "zeros" else "reflect"
    padded = TF.pad(image, [PAD], fill=0, padding_mode=tv_mode)
    crop = TF.crop(padded, oy, ox, image.shape[-2], image.shape[-1])
    return TF.hflip(crop) if flip else crop


def _chi_square_p(counts: torch.Tensor) -> float:
    """p-value of a chi-square goodness-of-fit test of ``counts`` against uniform."""
    counts = counts.double().flatten()
    expected = counts.sum() / counts.numel()
    stat = ((counts - expected) ** 2 / expected).sum()
    df = torch.tensor(counts.numel() - 1, dtype=torch.float64)
    return float(torch.special.gammaincc(df / 2, stat / 2))


def _coded_images(n: int) -> torch.Tensor:
    """Images whose pixels encode their coordinates: ch0 = 100 + row, ch1 = 100 + col,
    ch2 = 1 + sample % 250 (never 0, so zero padding is visible)."""
    rows = torch.arange(32).view(1, 32, 1).expand(n, 32, 32)
    cols = torch.arange(32).view(1, 1, 32).expand(n, 32, 32)
    ids = (1 + torch.arange(n) % 250).view(n, 1, 1).expand(n, 32, 32)
    return torch.stack([100 + rows, 100 + cols, ids], dim=1).to(torch.uint8)


def _recover(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels, offsets and flips of loader outputs made with mean 0 / std 1 on coded images."""
    pixels = (x.float() * 255).round().to(torch.uint8)
    centre_row = pixels[:, 0, 16, 16].long()  # = 100 + 16 + oy - 4
    c16, c17 = pixels[:, 1, 16, 16].long(), pixels[:, 1, 16, 17].long()
    flips = c17 < c16
    oy = centre_row - 112
    ox = torch.where(flips, c16 - 111, c16 - 112)  # flipped: col 16 reads ox + 15 - 16 + ...
    return pixels, torch.stack([oy, ox], dim=1), flips


def _loader(images: torch.Tensor, labels: torch.Tensor, **kwargs: object) -> GpuLoader:
    args: dict[str, object] = {
        "batch_size": 128,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "device": "cpu",
        "seed": 0,
    }
    args.update(kwargs)
    return GpuLoader(images, labels, **args)  # type: ignore[arg-type]


def _epoch(loader: GpuLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a: list[tuple[torch.Tensor, torch.Tensor]], b: list[tuple[torch.Tensor, torch.Tensor]]):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)


# ---------------------------------------------------------------------------------------------
# augment / crop_flip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(3, 32, 32), (2, 12, 20)])
def test_augment_equals_torchvision_pad_crop_flip(mode: str, shape: tuple[int, int, int]) -> None:
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(1, 256, (300, *shape), dtype=torch.uint8, generator=gen)
    out, offsets, flips = augment(images, torch.Generator().manual_seed(2), padding_mode=mode)
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.is_contiguous()
    assert offsets.shape == (300, 2) and flips.shape == (300,) and flips.dtype == torch.bool
    assert int(offsets.min()) == 0 and int(offsets.max()) == 2 * PAD
    for i in range(len(images)):
        oy, ox = (int(v) for v in offsets[i])
        expected = _reference(images[i], oy, ox, bool(flips[i]), mode)
        assert torch.equal(out[i], expected), (i, oy, ox, bool(flips[i]))


@pytest.mark.parametrize("mode", MODES)
def test_every_offset_and_flip_of_crop_flip(mode: str) -> None:
    """All 81 offsets x 2 flips, exhaustively, against torchvision."""
    grid = torch.tensor(list(itertools.product(range(9), range(9), (False, True))))
    n = len(grid)
    images = torch.randint(
        1, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    offsets, flips = grid[:, :2].long(), grid[:, 2].bool()
    out = crop_flip(images, offsets, flips, padding_mode=mode)
    for i in range(n):
        oy, ox = (int(v) for v in offsets[i])
        assert torch.equal(out[i], _reference(images[i], oy, ox, bool(flips[i]), mode))
    # identity crop: offset (4, 4), no flip
    centre = (grid[:, 0] == 4) & (grid[:, 1] == 4) & ~grid[:, 2].bool()
    assert torch.equal(out[centre], images[centre])


def test_drawn_offsets_are_uniform_and_flips_fair() -> None:
    offsets, flips = draw_augmentation(40_500, torch.Generator().manual_seed(4))
    joint = torch.bincount(offsets[:, 0] * 9 + offsets[:, 1], minlength=81)
    assert joint.numel() == 81 and int(joint.min()) > 0
    assert _chi_square_p(joint) > 1e-3
    for axis in range(2):
        assert _chi_square_p(torch.bincount(offsets[:, axis], minlength=9)) > 1e-3
    assert abs(flips.double().mean().item() - 0.5) < 0.01


# ---------------------------------------------------------------------------------------------
# GpuLoader


@pytest.mark.parametrize("mode", MODES)
def test_loader_batches_are_torchvision_crops_with_uniform_offsets(mode: str) -> None:
    n = 8100
    images = _coded_images(n)
    loader = _loader(images, torch.arange(n), batch_size=500, padding_mode=mode, seed=5)
    all_offsets, all_flips = [], []
    for x, y in loader:
        assert x.dtype == torch.float32 and x.is_contiguous()
        pixels, offsets, flips = _recover(x)
        assert int(offsets.min()) >= 0 and int(offsets.max()) <= 2 * PAD
        for i in range(0, len(y), 7):  # a sample of each batch, against torchvision
            oy, ox = (int(v) for v in offsets[i])
            expected = _reference(images[int(y[i])], oy, ox, bool(flips[i]), mode)
            assert torch.equal(pixels[i], expected)
        all_offsets.append(offsets)
        all_flips.append(flips)
    offsets = torch.cat(all_offsets)
    flips = torch.cat(all_flips)
    assert len(offsets) == n
    joint = torch.bincount(offsets[:, 0] * 9 + offsets[:, 1], minlength=81)
    assert int(joint.min()) > 0
    assert _chi_square_p(joint) > 1e-3
    assert _chi_square_p(torch.bincount(offsets[:, 0], minlength=9)) > 1e-3
    assert _chi_square_p(torch.bincount(offsets[:, 1], minlength=9)) > 1e-3
    assert abs(flips.double().mean().item() - 0.5) < 4 * (0.25 / n) ** 0.5


def test_loader_normalises_like_torchvision() -> None:
    images = torch.randint(
        0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(6)
    )
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    loader = _loader(images, torch.arange(40), batch_size=40, mean=mean, std=std, seed=7)
    raw = _loader(images, torch.arange(40), batch_size=40, seed=7)
    ((x, y),) = list(loader)
    ((x_raw, y_raw),) = list(raw)
    pixels = (x_raw * 255).round().to(torch.uint8)
    tv = T.Compose([T.ToPILImage(), T.ToTensor(), T.Normalize(mean, std)])
    expected = torch.stack([tv(p) for p in pixels])
    torch.testing.assert_close(x, expected, rtol=0, atol=2e-6)
    assert torch.equal(y, y_raw) and y.dtype == torch.int64


def test_epoch_covers_every_sample_once_and_keeps_last_partial_batch() -> None:
    n, batch = 1000, 128
    loader = _loader(
        torch.zeros(n, 3, 32, 32, dtype=torch.uint8), torch.arange(n), batch_size=batch
    )
    assert len(loader) == 8
    orders = []
    for _ in range(2):
        batches = _epoch(loader)
        sizes = [len(y) for _, y in batches]
        assert sizes == [batch] * 7 + [n - 7 * batch]
        assert all(x.shape == (len(y), 3, 32, 32) for x, y in batches)
        seen = torch.cat([y for _, y in batches])
        assert torch.equal(seen.sort().values, torch.arange(n))
        orders.append(seen)
    assert not torch.equal(orders[0], orders[1])  # a new permutation each epoch
    assert loader.epoch == 2


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    images = torch.randint(
        0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(8)
    )
    labels = torch.arange(300)
    a = _loader(images, labels, batch_size=64, seed=11)
    b = _loader(images, labels, batch_size=64, seed=11)
    c = _loader(images, labels, batch_size=64, seed=12)
    for _ in range(2):
        ea, eb, ec = _epoch(a), _epoch(b), _epoch(c)
        _same(ea, eb)
        assert not torch.equal(ea[0][1], ec[0][1])


def _roundtrip(state: dict[str, object]) -> dict[str, object]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("stop_after", [0, 3, 5])
def test_state_dict_round_trip_resumes_identically(stop_after: int) -> None:
    """Interrupt after one epoch plus ``stop_after`` batches; a new loader restored from the
    saved state yields exactly the batches the uninterrupted one yields."""
    images = torch.randint(
        0, 256, (330, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(9)
    )
    labels = torch.arange(330)
    reference = _loader(images, labels, batch_size=64, seed=21, padding_mode="reflect")
    assert len(reference) == 6
    _epoch(reference)
    it = iter(reference)
    head = [(x.clone(), y.clone()) for x, y in itertools.islice(it, stop_after)]
    assert len(head) == stop_after
    state = _roundtrip(reference.state_dict())
    for value in state.values():
        assert isinstance(value, int | torch.Tensor)
    del it  # the interrupted iteration is abandoned
    expected = _epoch(reference) + _epoch(reference)

    resumed = _loader(images, labels, batch_size=64, seed=999, padding_mode="reflect")
    resumed.load_state_dict(state)
    got = _epoch(resumed) + _epoch(resumed)
    _same(got, expected)
    assert resumed.epoch == reference.epoch


def test_state_dict_after_last_batch_starts_next_epoch() -> None:
    images = torch.zeros(100, 3, 32, 32, dtype=torch.uint8)
    loader = _loader(images, torch.arange(100), batch_size=50, seed=3)
    it = iter(loader)
    next(it)
    next(it)  # last batch handed out, generator not yet exhausted
    state = _roundtrip(loader.state_dict())
    assert int(state["epoch"]) == 1 and int(state["batch"]) == 0
    other = _loader(images, torch.arange(100), batch_size=50, seed=3)
    other.load_state_dict(state)
    _same(_epoch(other), _epoch(loader))


def test_state_dict_rejects_other_dataset() -> None:
    images = torch.zeros(100, 3, 32, 32, dtype=torch.uint8)
    state = _loader(images, torch.arange(100), batch_size=50).state_dict()
    other = _loader(images[:90], torch.arange(90), batch_size=50)
    with pytest.raises(ValueError, match="100 samples"):
        other.load_state_dict(state)


def test_channels_last_and_dtype() -> None:
    images = torch.randint(
        0, 256, (70, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(10)
    )
    labels = torch.arange(70)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    plain = _loader(images, labels, batch_size=32, mean=mean, std=std, seed=1)
    cl = _loader(images, labels, batch_size=32, mean=mean, std=std, seed=1, channels_last=True)
    bf16 = _loader(images, labels, batch_size=32, mean=mean, std=std, seed=1, dtype=torch.bfloat16)
    for (xp, yp), (xc, yc), (xb, _) in zip(plain, cl, bf16, strict=True):
        assert xc.is_contiguous(memory_format=torch.channels_last)
        assert not xc.is_contiguous()
        assert xp.is_contiguous()
        torch.testing.assert_close(xc, xp, rtol=0, atol=1e-6)
        assert torch.equal(yc, yp)
        assert xb.dtype == torch.bfloat16
        torch.testing.assert_close(xb.float(), xp, rtol=1e-2, atol=1e-2)


def test_bad_arguments() -> None:
    images = torch.zeros(10, 3, 32, 32, dtype=torch.uint8)
    labels = torch.arange(10)
    with pytest.raises(ValueError, match="padding_mode"):
        _loader(images, labels, padding_mode="edge")
    with pytest.raises(ValueError, match="3 per-channel values"):
        _loader(images, labels, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="positive"):
        _loader(images, labels, std=(0.5, 0.0, 0.5))
    with pytest.raises(ValueError, match="uint8"):
        _loader(images.float(), labels)
    with pytest.raises(ValueError, match="labels"):
        _loader(images, labels[:5])
    with pytest.raises(ValueError, match="batch_size"):
        _loader(images, labels, batch_size=0)


# ---------------------------------------------------------------------------------------------
# evaluation


@pytest.mark.parametrize("channels_last", [False, True])
def test_eval_loader_in_order_normalised(channels_last: bool) -> None:
    images = torch.randint(
        0, 256, (250, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(12)
    )
    labels = torch.randint(0, 10, (250,), generator=torch.Generator().manual_seed(13))
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    loader = EvalLoader(images, labels, mean, std, batch_size=100, channels_last=channels_last)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(y) for _, y in batches] == [100, 100, 50]
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    expected = T.Normalize(mean, std)(images.float() / 255)
    torch.testing.assert_close(x, expected, rtol=0, atol=2e-6)
    if channels_last:
        assert all(b[0].is_contiguous(memory_format=torch.channels_last) for b in batches)
    torch.testing.assert_close(normalize(images, mean, std), expected, rtol=0, atol=2e-6)
