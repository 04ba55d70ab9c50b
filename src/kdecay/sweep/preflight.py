"""``kdecay check``: validate a params file, dvc.yaml and the machine before ``dvc repro``.

Runs in seconds, before anything is downloaded: the params load as one typed configuration
(:func:`kdecay.config.load_config`: every key known, every value in range, no repeated seed
or k), every run resolves, every row's model builds, the training stages dvc.yaml renders are
exactly :meth:`kdecay.config.Config.runs` (same stage names, same output folders), and,
without a GPU, no full-size run would start weeks of CPU training.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdecay.checks import ConfigError
from kdecay.config import TRAINING_STAGE, Config, load_config
from kdecay.data.datasets import DATASETS
from kdecay.models import build_from_spec, forward_macs
from kdecay.train.provenance import estimated_cpu_hours
from kdecay.train.runtime import select_device

__all__ = ["check_config", "check_dvc_stages", "check_machine", "preflight"]


def _row_macs(config: Config) -> dict[str, int]:
    """Forward MACs of every row's model (built on the meta device: no memory, no time)."""
    macs = {}
    for row, recipe in config.rows.items():
        try:
            with torch.device("meta"):
                model = build_from_spec(recipe.model, 10)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"rows.{row}.model: {err}") from err
        macs[row] = forward_macs(model)
    return macs


def check_save_weights(config: Config, dvc_yaml: Path = Path("dvc.yaml")) -> None:
    """The pipeline tracks every run's ``model.pt``: ``train.save_weights: false`` would make
    each training stage fail DVC's output check after hours of training."""
    if config.train.save_weights or not dvc_yaml.is_file():
        return
    if "model.pt" in dvc_yaml.read_text():
        raise ConfigError(
            "train.save_weights is false, but dvc.yaml tracks each run's model.pt (a DVC "
            "output): set train.save_weights: true, or remove the model.pt lines from "
            "dvc.yaml's training stages"
        )


def _rendered_training_stages(root: Path) -> dict[str, set[str]]:
    """``{stage name: its output folders}`` of every training stage dvc.yaml renders."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {
            stage.addressing: {str(Path(out.def_path).parent) for out in stage.outs}
            for stage in repo.index.stages
            if stage.addressing.startswith(TRAINING_STAGE)
        }


def check_dvc_stages(config: Config, root: Path = Path()) -> int:
    """The training stages of ``root/dvc.yaml`` are exactly ``config.runs()``; returns their
    number. Differences are named (a row list in dvc.yaml that lost a row, a k DVC writes in
    another folder, the SGDR row's missing original stage)."""
    rendered = _rendered_training_stages(root)
    runs = {run.stage: str(run.out_dir()) for run in config.runs()}
    extra, missing = sorted(set(rendered) - set(runs)), sorted(set(runs) - set(rendered))
    moved = [n for n in rendered if n in runs and rendered[n] != {runs[n]}]
    problems = []
    if missing:
        problems.append(f"{len(missing)} run(s) of params have no stage (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} stage(s) are no run of params (e.g. {extra[0]})")
    if moved:
        problems.append(f"{moved[0]} writes to {sorted(rendered[moved[0]])}, not {runs[moved[0]]}")
    if problems:
        raise ConfigError(
            "dvc.yaml's training stages and params disagree: " + "; ".join(problems) + ". The "
            "row lists of dvc.yaml's train_original/train_kdecay matrices must be params' rows "
            "(without the SGDR row in train_original)"
        )
    return len(rendered)


def check_claims(config: Config, appendix_path: Path) -> None:
    """Each ``claims.cells`` entry is a printed k-decay result of the appendix, at its k."""
    if not config.claims.cells or not appendix_path.is_file():
        return
    from kdecay.report.tables import load_appendix

    appendix = load_appendix(appendix_path).dropna(subset=["kdecay_err", "k"])
    printed = {(a["dataset"], a["row"]): float(a["k"]) for _, a in appendix.iterrows()}
    for i, cell in enumerate(config.claims.cells):
        k = printed.get((cell.dataset, cell.row))
        if k != cell.k:
            what = "prints no k-decay result" if k is None else f"prints its result at k = {k:g}"
            raise ConfigError(
                f"claims.cells[{i}] ({cell.dataset}/{cell.row}, k = {cell.k:g}): the appendix "
                f"({appendix_path}) {what}; claims.cells lists the paper's printed results"
            )


def check_config(config: Config, root: Path = Path(), params_file: Path | None = None) -> None:
    """Every check that needs no data: each run resolves, each model builds, the claims are
    the appendix's, and (when ``params_file`` is the params.yaml DVC reads beside dvc.yaml)
    dvc.yaml agrees."""
    check_save_weights(config, root / "dvc.yaml")
    check_claims(config, root / "paper" / "appendix_tables.csv")
    for run in config.runs():
        config.spec(run)
    _row_macs(config)
    reads_dvc = params_file is None or params_file.resolve() == (root / "params.yaml").resolve()
    if reads_dvc and (root / "dvc.yaml").is_file() and (root / ".dvc").is_dir():
        check_dvc_stages(config, root)


def check_machine(config: Config) -> None:
    """Without CUDA and with ``train.device: auto``, refuse runs over train.cpu_max_hours."""
    options = config.train
    if options.device != "auto" or select_device(options.device).type == "cuda":
        return
    macs, runs = _row_macs(config), config.runs()
    hours = {
        (run.dataset, run.row): estimated_cpu_hours(
            macs[run.row], DATASETS[run.dataset].train_images, config.rows[run.row].epochs
        )
        for run in runs
    }
    too_long = [run for run in runs if hours[(run.dataset, run.row)] > options.cpu_max_hours]
    if too_long:
        worst = max(too_long, key=lambda r: hours[(r.dataset, r.row)])
        total = sum(hours[(r.dataset, r.row)] for r in too_long)
        raise ConfigError(
            f"no GPU (CUDA) is visible, and {len(too_long)} runs of this params file are "
            f"full-size (rows.{worst.row}: about {hours[(worst.dataset, worst.row)]:,.0f} "
            f"CPU-hours per run; about {total:,.0f} CPU-hours in all, > train.cpu_max_hours = "
            f"{options.cpu_max_hours:g} per run). Nothing was downloaded. Run `make repro` on a "
            "GPU machine; `make smoke` runs the whole pipeline on synthetic data with tiny "
            "models on this CPU (its duration: README, `make smoke`); set train.device: cpu "
            "to force the CPU anyway."
        )


def preflight(params_file: Path) -> None:
    """``kdecay check``: params, dvc.yaml and machine checks; one line when all is well."""
    config = load_config(params_file)
    check_config(config, params_file=params_file)
    check_machine(config)
    print(f"check: {params_file} is valid: {len(config.runs())} runs; this machine can run them")
