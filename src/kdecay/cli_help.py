"""The help of ``kdecay <command> --help``: one paragraph per subcommand saying what it does,
and every option's default shown (argparse's ``ArgumentDefaultsHelpFormatter``, except where
the help text already says its default)."""

from __future__ import annotations

import argparse

__all__ = ["DESCRIPTIONS", "HelpFormatter"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after an option's help unless the help already names its
    default (``default ...``) or there is none (``None``, a flag's ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default is not None and action.default is not False
        if "default" in text or not shown or action.default == argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


DESCRIPTIONS = {
    "download": "Fetch one CIFAR archive (data.<dataset>.url of params.yaml) to a temporary "
    "name, verify its md5 and keep it only then. Without network, the error says where to "
    "place the archive by hand; an archive already there is verified and kept.",
    "prepare": "Verify the archive's md5, extract only the members CIFAR has (refusing unsafe "
    "paths, links and oversized members), unpickle them with a restricted reader and write "
    "one checksummed .pt file: uint8 NCHW train/test images, labels, channel mean/std.",
    "synth": "Write a synthetic archive in the exact CIFAR-10/100 python format (learnable "
    "class patterns plus noise) and print its md5: what make smoke and the tests feed the "
    "real download and prepare stages.",
    "train": "Train one run: a row of params.yaml with its original recipe (--original) or "
    "the k-decay schedule at --k, one seed. Writes metrics.json, run.json, history.csv and "
    "model.pt to --out; checkpoints go to .cache/checkpoints and a rerun resumes from them. "
    "Without a GPU, a full-size run is refused before any data is read.",
    "train-group": "Train 2 or more runs of one row (same recipe but schedule and seed) as one "
    "fused network, each with its own outputs and checkpoints: what kdecay sweep --fuse runs.",
    "aggregate": "Read every run folder, validate its files and write results/summary.csv: "
    "one line per run and one per table cell (mean, std, median, n, diverged, missing).",
    "tables": "The two appendix tables regenerated beside the paper's numbers, with the "
    "verdict of each printed claim, as Markdown, LaTeX (booktabs) and CSV.",
    "figures": "The LR schedules, the final error against k, and the training curves of every "
    "row, as PDF and PNG.",
    "check": "Validate params.yaml (every key, every run), compare dvc.yaml's training stages "
    "with the runs of params, and refuse full-size runs on a machine without a GPU, before "
    "anything is downloaded. make repro runs it first.",
    "look": "Where each printed claim stands in the group-sequential design after the finished "
    "runs (results/summary.csv): decided yes, stopped for futility, decided no, or going on to "
    "its next look. --apply writes the next look's seeds into params.yaml (claims.cells[i].seeds "
    "and claim_runs, comments kept); exit 3 when it added seeds, 0 when nothing is left to "
    "train, 1 when runs of the current look are missing. make repro repeats dvc repro and this.",
    "clean-checkpoints": "Remove the checkpoints of runs dvc.lock has recorded and of "
    "configurations no longer in params.yaml; the others are kept for resuming.",
    "plan": "Print the runs, epochs, optimizer steps and estimated GPU-hours of params.yaml, "
    "and the power of its seed plan; with --fuse G, also the tasks of a fused sweep.",
    "smoke": "Run the whole pipeline (download, prepare, train, aggregate, tables, figures) on "
    "synthetic CIFAR-format archives with tiny models, in a scratch git + DVC workspace that "
    "is kept: a rerun resumes it and does nothing when it is up to date.",
    "sweep": "Run every stale training stage of dvc.yaml on an engine (Ray on this machine or "
    "a Ray cluster, or SLURM through submitit), record each finished run in dvc.lock at once, "
    "then dvc repro the tables and figures. Killed at any moment, a rerun loses nothing.",
    "bench": "Time the training step each run uses, per model at its row's batch size, side "
    "by side with a standard torchvision + DataLoader pipeline in the same process; results "
    "to results/bench/bench.{json,md}.",
    "proof": "On a GPU machine lent for minutes, in one call: the CUDA correctness checks, "
    "every model's seconds per epoch (largest share of the plan first), fused groups against "
    "runs alone, one full epoch of kdecay train, each step under a hard deadline in a "
    "supervised worker process; proof.md opens with the conclusions. --resume continues a "
    "stopped proof; --device cpu runs the same sequence with tiny sizes (a dry run).",
}
