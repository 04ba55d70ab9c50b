"""Where each claim stands in the group-sequential design (:mod:`kdecay.stats.sequential`),
replayed from the finished runs: the tables, ``kdecay look`` and the seeds it adds all read
this one function, so they never disagree.

Look j takes the first ``looks[j]`` seeds of a claim's ``claims.cells[i].seeds`` in every arm.
The replay walks the looks in order: at look j every claim still open whose arms have finished
those seeds (completed or diverged) is tested (its intersection-union p on exactly those
seeds), and :func:`kdecay.stats.sequential.decide` gives each "yes", "futile", "continue" or,
at the last look, "no", with Holm re-testing over the family's ``m`` claims (a "yes" at an
earlier look passes its level on). A claim whose runs of the next look are not all finished
stops the replay there for that claim ("continue" with the look it reached, or "pending" before
its first). The seeds are fixed before any result and a look only ever adds seeds, so the
replay gives the same states however often it is run.
"""

from __future__ import annotations

import math

import pandas as pd

from kdecay.report.claims import LineCells, Look, finished_seeds, take_samples
from kdecay.stats.sequential import decide

__all__ = ["replay_looks"]


def _test_at(runs: pd.DataFrame, line: LineCells, n: int) -> float:
    take_samples(runs, line, line.seeds[:n])
    test = line.test
    return test.p if test is not None and test.tested else math.nan


def replay_looks(lines: list[LineCells], runs: pd.DataFrame, alpha: float,
                 looks: tuple[int, ...]) -> int:  # fmt: skip
    """Set ``line.look`` (and the samples of the look reached) of every printed line; returns
    the family's size m."""
    family = [line for line in lines if line.printed]
    m = len(family)
    done = {id(line): finished_seeds(runs, line) for line in family}
    for line in family:
        count = sum(1 for s in line.seeds if s in done[id(line)])
        line.look = Look(-1, 0, "pending", math.nan, looks, count)
    rejected = 0
    for j, n in enumerate(looks):
        ready = [
            line
            for line in family
            if line.look is not None
            and line.look.index == j - 1
            and not line.look.decided
            and len(line.seeds) >= n
            and set(line.seeds[:n]) <= done[id(line)]
        ]
        if not ready:
            break
        names = [f"{line.dataset}/{line.row}" for line in ready]
        pvalues = {name: _test_at(runs, line, n) for name, line in zip(names, ready, strict=True)}
        states = decide(j, pvalues, names, alpha, m, rejected=rejected, looks=looks)
        for name, line in zip(names, ready, strict=True):
            assert line.look is not None
            line.look = Look(j, n, states[name], pvalues[name], looks, line.look.finished)
        rejected += sum(1 for s in states.values() if s == "yes")
    return m
