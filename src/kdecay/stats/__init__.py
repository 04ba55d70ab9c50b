"""The statistics of the claims, in one room: the Welch comparison from raw seeds and failed
seeds (:mod:`.welch`), the family's intersection-union tests, Holm and bounds (:mod:`.family`),
the group-sequential design (:mod:`.sequential`), exact fixed-n power and the selection
optimism of the paper's k (:mod:`.power`), and the simulated power and cost of the whole
procedure (:mod:`.simulate`)."""

from kdecay.stats.family import CellTest, cell_test, holm, interval, iut, simultaneous_bound
from kdecay.stats.power import selection_optimism, welch_power
from kdecay.stats.sequential import LOOKS, decide, nominal_levels, repeated_bound
from kdecay.stats.simulate import Claim, Simulation, scenario_claims, simulate
from kdecay.stats.welch import Comparison, Sample, control_sample, kdecay_sample, welch

__all__ = [
    "LOOKS",
    "CellTest",
    "Claim",
    "Comparison",
    "Sample",
    "Simulation",
    "cell_test",
    "control_sample",
    "decide",
    "holm",
    "interval",
    "iut",
    "kdecay_sample",
    "nominal_levels",
    "repeated_bound",
    "scenario_claims",
    "selection_optimism",
    "simulate",
    "simultaneous_bound",
    "welch",
    "welch_power",
]
