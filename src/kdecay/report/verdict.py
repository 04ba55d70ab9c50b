"""The verdicts of the tables in words (the tests themselves are :mod:`kdecay.stats`).

Per claim: each component (k-decay at the paper's k against the original recipe, against
k = 1) with our gain beside the paper's, its one-sided Welch p, its two-sided 95% interval and
whether the paper's gain lies inside it ("size: consistent / smaller / larger than printed");
then the claim's verdict, which begins with "yes" only when the group-sequential design
confirmed it (its intersection-union p crossed the Holm step's boundary at some look), with
the look it was reached at, the repeated simultaneous lower bound of the smaller gain
(Bonferroni at alpha / m over the claims, spending over the looks: all the claims' bounds at
every look hold together with probability >= 1 - alpha) and the failed seeds named.
"""

from __future__ import annotations

import math

from kdecay.report.claims import LineCells
from kdecay.stats.family import interval
from kdecay.stats.sequential import repeated_bound
from kdecay.stats.welch import Comparison

__all__ = ["claim_text", "component_text"]


def component_text(comp: Comparison | None, paper_gain: float) -> str:
    """One comparison of a claim: gain vs the paper's, p, 95% interval and size, n."""
    if comp is None:
        return "n/a (runs missing)"
    if math.isnan(comp.gain):  # no baseline run to compare (every seed diverged)
        return f"n/a ({comp.no_test})"
    gain = f"{comp.gain:+.2f} vs paper {paper_gain:+.2f}"
    n_txt = f"n={comp.n[0]}/{comp.n[1]}"
    if not comp.tested:
        return f"no test: {comp.no_test} ({gain}; {n_txt})"
    ci = interval(comp, paper_gain)
    return (
        f"{gain}; one-sided Welch p={comp.p:.3f}; 95% CI [{ci.low:+.2f}, {ci.high:+.2f}], "
        f"size {ci.size}; {n_txt}"
    )


def _not_testable(line: LineCells) -> str | None:
    if not line.printed:
        return "n/a (paper's k-decay result not in the text)"
    if line.at_paper is None:
        return f"n/a (paper's k={line.paper_k:g} not run: add it to kdecay.ks or claims.cells)"
    if line.test is None:
        return "n/a (runs missing)"
    if not line.test.tested:
        return f"no test ({line.test.no_test})"
    return None


def _head(line: LineCells) -> str:
    look = line.look
    assert look is not None and line.test is not None
    where = look.words()
    if look.state == "yes":
        return f"yes at {where}"
    if look.state == "futile":
        return f"not confirmed: futile at {where}"
    if look.state == "no":
        return f"not confirmed at the last look: {where}"
    return f"not confirmed yet: {where}; look {look.index + 2} takes {look.needs} seeds per arm"


def claim_text(line: LineCells, alpha: float, m: int) -> str:
    """The claim's verdict where the sequential design stands (:mod:`kdecay.report.looks`):
    ``yes`` / ``not confirmed`` with the look, the IUT p at that look, the repeated
    simultaneous bound of the smaller gain, and the failed seeds; or why no test."""
    failures = line.failures()
    reason = _not_testable(line)
    if reason is not None:
        return reason[:-1] + f"; {failures})" if failures else reason
    assert line.test is not None
    look = line.look
    if look is None or look.index < 0:
        where = look.words() if look is not None else "no look"
        text = f"not confirmed yet ({where}; IUT p={line.test.p:.3f} on the seeds so far"
        return text + (f"; {failures})" if failures else ")")
    text = f"{_head(line)} (IUT p={look.p:.3f}, Holm over {m} claims"
    comps = [c for c in line.components.values() if c is not None and c.tested]
    if comps:
        bounds = [repeated_bound(c, alpha, m, look.index, look.looks) for c in comps]
        low = min(bounds, key=lambda b: b.value)
        text += f"; smaller gain >= {low.value:+.2f}, {low.label}"
    return text + (f"; {failures})" if failures else ")")
