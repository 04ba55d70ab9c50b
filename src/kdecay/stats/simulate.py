"""Power and expected cost of the whole sequential procedure, by simulation.

One simulated experiment runs the family as ``kdecay look`` would: per claim three arms (the
row's original recipe, its k = 1, k-decay at the paper's k; two for the SGDR row, whose original
is its k = 1) of seeds drawn as normal errors, k-decay ``sigma Z``, original ``g_o + sigma Z'``,
k = 1 ``g_1 + sigma Z''`` (``g``: the true gains, ``sigma``: the dataset's seed std). At each
look of :data:`kdecay.stats.sequential.LOOKS` every open claim has ``n_j`` seeds per arm; its p
is the intersection-union p of the two one-sided Welch tests, computed by
``scipy.stats.ttest_ind(..., equal_var=False, alternative="greater")`` exactly as the verdicts
do; :func:`kdecay.stats.sequential.decide_many` applies the boundaries, Holm re-testing and
futility. Over ``experiments`` runs (a seeded ``numpy.random.Generator``, vectorised):

* power of a claim: ``P(yes)``;
* family-wise error: ``P(at least one "yes" among the claims whose smaller true gain is <= 0)``
  (NaN when every claim is truly better);
* expected seeds per arm of a claim: the mean seed count at which it stopped; times its arms
  (:attr:`Claim.arms`) and the GPU-hours of one run it is the claim's expected cost.

Scenarios (:func:`scenario_claims`, from the appendix records): "paper" (each printed gain,
original error minus k-decay error; the gain against k = 1 assumed equal unless told), "shrunk"
(minus the optimism of the paper's choice of k, :func:`kdecay.stats.power.selection_optimism`
``* sigma``), "null" (every gain 0). ``noise`` scales every sigma (e.g. 1.5: a std from 5 runs
has a 95% interval of about x0.6 to x2.9).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from kdecay.stats.power import selection_optimism
from kdecay.stats.sequential import (
    CONTINUE,
    FUTILE,
    FUTILITY,
    LOOKS,
    YES,
    decide_many,
    holm_thresholds,
)

__all__ = ["SCENARIOS", "SEED", "Claim", "Simulation", "scenario_claims", "simulate"]

SCENARIOS = ("paper", "shrunk", "null")
SEED = 20040590  # the plan is the same on every machine
CHUNK = 5_000  # experiments per vectorised batch (memory: 3 x CHUNK x claims x seeds floats)


@dataclass(frozen=True)
class Claim:
    """One claim's true state: the gains against its baselines and its seed std."""

    name: str
    sigma: float
    gain_original: float
    gain_k1: float | None = None  # None: one baseline (the SGDR row's original is its k = 1)

    @property
    def arms(self) -> int:
        """Runs per seed: k-decay and each baseline."""
        return 2 if self.gain_k1 is None else 3

    @property
    def gain(self) -> float:
        """The smaller true gain: the claim is true exactly when it is > 0."""
        return self.gain_original if self.gain_k1 is None else min(self.gain_original,
                                                                   self.gain_k1)  # fmt: skip


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` found, per claim in input order."""

    claims: tuple[Claim, ...]
    power: tuple[float, ...]  # P(yes)
    futile: tuple[float, ...]  # P(stopped for futility)
    seeds: tuple[float, ...]  # expected seeds per arm
    fwer: float  # P(any false yes); NaN when no claim is null
    experiments: int
    looks: tuple[int, ...]
    seconds: float

    def runs(self) -> tuple[float, ...]:
        """Expected runs per claim: seeds per arm times arms."""
        return tuple(s * c.arms for s, c in zip(self.seeds, self.claims, strict=True))

    def rows(self) -> list[dict[str, Any]]:
        """One record per claim, for a table."""
        return [
            {"claim": c.name, "gain": c.gain, "sigma": c.sigma, "arms": c.arms, "power": p,
             "futile": f, "seeds_per_arm": s, "runs": s * c.arms}
            for c, p, f, s in zip(self.claims, self.power, self.futile, self.seeds, strict=True)
        ]  # fmt: skip


def _pvalues(base: np.ndarray, kd: np.ndarray) -> np.ndarray:
    return stats.ttest_ind(base, kd, axis=-1, equal_var=False, alternative="greater").pvalue


def _batch(
    rng: np.random.Generator,
    size: int,
    claims: Sequence[Claim],
    looks: tuple[int, ...],
    thresholds: np.ndarray,
    futility: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``size`` experiments: (yes, futile, seeds at stop), each ``(size, claims)``."""
    sigma = np.array([c.sigma for c in claims])[:, None]
    single = np.array([c.gain_k1 is None for c in claims])
    g_o = np.array([c.gain_original for c in claims])[:, None]
    g_1 = np.array([0.0 if c.gain_k1 is None else c.gain_k1 for c in claims])[:, None]
    z = rng.standard_normal((3, size, len(claims), looks[-1]))
    kd, orig, k1 = sigma * z[0], g_o + sigma * z[1], g_1 + sigma * z[2]
    active = np.ones((size, len(claims)), dtype=bool)
    yes, futile = np.zeros_like(active), np.zeros_like(active)
    stop = np.full(active.shape, looks[-1])
    rejected = np.zeros(size, dtype=int)
    for j, n in enumerate(looks):
        p = _pvalues(orig[..., :n], kd[..., :n])
        if not single.all():
            p = np.where(single, p, np.maximum(p, _pvalues(k1[..., :n], kd[..., :n])))
        code = decide_many(j, p, active, rejected, thresholds, futility)
        stop[active & (code != CONTINUE)] = n
        yes |= code == YES
        futile |= code == FUTILE
        rejected += (code == YES).sum(axis=1)
        active &= code == CONTINUE
    return yes, futile, stop


def simulate(
    claims: Sequence[Claim],
    *,
    looks: Sequence[int] = LOOKS,
    alpha: float = 0.05,
    m: int | None = None,
    experiments: int = 20_000,
    seed: int = SEED,
    futility: float = FUTILITY,
) -> Simulation:
    """Simulate the sequential procedure (module docstring) for ``claims`` as one Holm family
    of ``m`` (default: the number of claims; untested members would count with p = 1)."""
    if not claims:
        raise ValueError("no claims to simulate")
    start = time.perf_counter()
    looks = tuple(int(n) for n in looks)
    thresholds = holm_thresholds(alpha, m or len(claims), looks)
    rng = np.random.default_rng(seed)
    parts = []
    for done in range(0, experiments, CHUNK):
        size = min(CHUNK, experiments - done)
        parts.append(_batch(rng, size, claims, looks, thresholds, futility))
    yes, futile, stop = (np.concatenate(x) for x in zip(*parts, strict=True))
    null = np.array([c.gain <= 0 for c in claims])
    fwer = float(yes[:, null].any(axis=1).mean()) if null.any() else math.nan
    return Simulation(
        claims=tuple(claims),
        power=tuple(float(v) for v in yes.mean(axis=0)),
        futile=tuple(float(v) for v in futile.mean(axis=0)),
        seeds=tuple(float(v) for v in stop.mean(axis=0)),
        fwer=fwer,
        experiments=experiments,
        looks=looks,
        seconds=time.perf_counter() - start,
    )


def scenario_claims(
    records: Iterable[Mapping[str, Any]],
    seed_std: Mapping[str, float],
    scenario: str,
    *,
    single_rows: Collection[str] = ("wrn28_10_sgdr",),
    noise: float = 1.0,
    k_values: int = 6,
    k1_gains: Mapping[str, float] | None = None,
) -> list[Claim]:
    """The claims of the appendix ``records`` (``dataset``, ``row``, ``original_err``,
    ``kdecay_err``; rows with no printed k-decay error are not claims) under ``scenario``.
    ``single_rows``: rows whose original recipe is their k = 1 (one baseline); ``k1_gains``:
    true gains against k = 1 by claim name ``dataset/row`` (default: the original's gain)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
    claims = []
    for r in records:
        kd_err = float(r["kdecay_err"])
        if math.isnan(kd_err):
            continue
        name, sigma = f"{r['dataset']}/{r['row']}", seed_std[r["dataset"]] * noise
        gain = float(r["original_err"]) - kd_err
        k1 = (k1_gains or {}).get(name, gain)
        if scenario == "shrunk":
            cut = selection_optimism(k_values) * sigma
            gain, k1 = gain - cut, k1 - cut
        elif scenario == "null":
            gain = k1 = 0.0
        claims.append(Claim(name, sigma, gain, None if r["row"] in single_rows else k1))
    return claims
