"""``kdecay bench``: throughput of the training path side by side with a standard PyTorch
pipeline (``run``), its targets, pipelines, timing helpers, shared-GPU test and report."""

from kdecay.bench.pipelines import EPOCH_IMAGES
from kdecay.bench.run import run_bench
from kdecay.bench.targets import BenchTarget, select_targets
from kdecay.bench.timing import measure_peak_flops

__all__ = ["EPOCH_IMAGES", "BenchTarget", "measure_peak_flops", "run_bench", "select_targets"]
