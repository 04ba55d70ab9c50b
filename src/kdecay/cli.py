"""kdecay <command>: one subcommand per pipeline stage, plus check, plan, clean-checkpoints,
synth, smoke, sweep and bench.

Each subcommand imports its module lazily, so ``kdecay --help`` is instant. Expected failures
(bad params, missing data, failed checksums) print one clear ``error:`` line and exit 2; Ctrl-C
prints one line (what was kept, how to resume) and exits 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdecay.checks import ConfigError
from kdecay.cli_help import DESCRIPTIONS, HelpFormatter
from kdecay.config.sections import STEP_FORMS
from kdecay.data.datasets import DATASETS

if TYPE_CHECKING:
    from kdecay.config import DataSection

DESCRIPTION = (
    "Reproduce the CIFAR experiments of 'k-decay: A New Method For Learning Rate Schedule' "
    "(arXiv:2004.05909): one subcommand per stage of the DVC pipeline, plus tools."
)
PARAMS_HELP = "params file (default: params.yaml)"


def _params_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=Path("params.yaml"), type=Path, help=PARAMS_HELP)


def _dataset_arg(p: argparse.ArgumentParser) -> None:
    choices = tuple(DATASETS)
    p.add_argument("--dataset", required=True, choices=choices, help=" or ".join(choices))


def _data_section(a: argparse.Namespace) -> DataSection:
    """The params' ``data`` section, or its defaults when ``--url`` is given and there is no
    params file (a download by hand)."""
    from kdecay.config import DataSection, load_config

    use_params = a.params.is_file() or getattr(a, "url", "") is None
    return load_config(a.params).data if use_params else DataSection()


def _raw_dir(a: argparse.Namespace, data: DataSection) -> Path:
    return Path(a.raw_dir) if a.raw_dir else Path(data.raw_dir) / a.dataset


def _source(data: DataSection, dataset: str, what: str) -> str | None:
    source = data.sources.get(dataset)
    return getattr(source, what) if source is not None else None


def _cmd_download(a: argparse.Namespace) -> None:
    from kdecay.data.download import download

    data = _data_section(a)
    url = a.url or _source(data, a.dataset, "url")
    download(a.dataset, _raw_dir(a, data), url=url, md5=a.md5 or _source(data, a.dataset, "md5"))


def _cmd_prepare(a: argparse.Namespace) -> None:
    from kdecay.data.prepare import prepare

    data = _data_section(a)
    out = Path(a.out_dir or data.prepared_dir)
    prepare(a.dataset, _raw_dir(a, data), out, md5=a.md5 or _source(data, a.dataset, "md5"))


def _cmd_synth(a: argparse.Namespace) -> None:
    from kdecay.data.synth import make_archive

    path, md5 = make_archive(a.dataset, a.out, n_train=a.train, n_test=a.test, seed=a.seed)
    print(f"wrote {path}")
    print(f"md5 {md5}")


def _cmd_train(a: argparse.Namespace) -> None:
    from kdecay.config import load_config
    from kdecay.train import train_run

    method = "original" if a.original else "kdecay"
    train_run(load_config(a.params).run_spec(a.dataset, a.row, method, a.k, a.seed), a.out)


def _cmd_train_group(a: argparse.Namespace) -> None:
    from kdecay.train.group import member_runs, train_group

    train_group(member_runs(a.params, a.stage), step=a.step)


def _cmd_check(a: argparse.Namespace) -> None:
    from kdecay.sweep.preflight import preflight

    preflight(a.params)


def _cmd_plan(a: argparse.Namespace) -> None:
    from kdecay.sweep.plan import print_plan

    print_plan(a.params, fuse=a.fuse, bench=a.bench, as_json=a.json)


def _cmd_look(a: argparse.Namespace) -> int:
    from kdecay.sweep.look import look

    return look(a.params, a.summary, a.appendix, a.apply)


def _cmd_clean(a: argparse.Namespace) -> None:
    from kdecay.sweep.clean import clean_checkpoints

    clean_checkpoints(a.params)


def _cmd_aggregate(a: argparse.Namespace) -> None:
    from kdecay.report.aggregate import aggregate

    aggregate(a.runs, a.out, params_file=a.params, plots_dir=a.plots)


def _cmd_tables(a: argparse.Namespace) -> None:
    from kdecay.report.tables import write_tables

    write_tables(a.summary, a.appendix, a.out, params_file=a.params)


def _cmd_figures(a: argparse.Namespace) -> None:
    from kdecay.report.figures import write_figures

    write_figures(a.summary, a.runs, a.appendix, a.out, params_file=a.params)


def _cmd_smoke(a: argparse.Namespace) -> None:
    from kdecay.sweep.smoke import run_smoke

    if a.fuse < 1:
        raise ConfigError(f"--fuse {a.fuse}: give G >= 1 (1: every run alone, by dvc repro)")
    run_smoke(a.workdir, params_file=a.params, reset=a.reset, fuse=a.fuse)


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--shard must be I/N (e.g. 0/2), got {text!r}") from err
    return index, count


def _cmd_sweep(a: argparse.Namespace) -> None:
    from kdecay.sweep.driver import SweepOptions, run_sweep

    given = {
        "timeout_min": None if a.time is None else _minutes(a.time),
        "gpus_per_job": a.gpus_per_job,
        "cpus_per_job": a.cpus_per_job,
        "array_parallelism": a.array_parallelism,
        "partition": a.partition,
    }
    opts = SweepOptions(
        engine=a.engine,
        params_file=a.params,
        log_dir=a.logs,
        address=a.address,
        gpus=a.gpus,
        cpus=a.cpus,
        shard=a.shard,
        cluster=a.cluster,
        fuse=a.fuse,
        fused_step=a.step,
        slurm={key: value for key, value in given.items() if value is not None},
    )
    if run_sweep(opts):
        raise SystemExit(1)


def _minutes(hms: str) -> int:
    """``HH:MM:SS`` -> whole minutes (at least 1)."""
    try:
        h, m, sec = (int(v) for v in hms.split(":"))
    except ValueError as err:
        raise ConfigError(f"--time must be HH:MM:SS, got {hms!r}") from err
    return max(1, h * 60 + m + (sec + 59) // 60)


def _cmd_bench(a: argparse.Namespace) -> None:
    from kdecay.bench import run_bench

    run_bench(
        models=a.models,
        device=a.device,
        steps=a.steps,
        warmup=a.warmup,
        out_dir=a.out,
        params_file=a.params,
        step=a.step,
        repeats=a.repeats,
        shared=a.shared,
        fuse=a.fuse,
    )


def _cmd_proof(a: argparse.Namespace) -> None:
    from kdecay.bench.proof_supervisor import run_proof

    if a.resume is not None:
        run_proof(a.resume, a.device, a.budget_seconds, a.params, resume=True)
    else:
        run_proof(a.out, a.device, a.budget_seconds, a.params)


def _add_data_commands(sub: Any) -> None:
    p = sub.add_parser("download", help="fetch a CIFAR archive and verify its md5")
    _dataset_arg(p)
    p.add_argument("--url", help="source URL (default: data.<dataset>.url; file:// works)")
    p.add_argument("--md5", help="expected md5 (default: data.<dataset>.md5)")
    p.add_argument("--raw-dir", help="target folder (default: <data.raw_dir>/<dataset>)")
    _params_arg(p)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("prepare", help="verify, extract safely and convert to one .pt file")
    _dataset_arg(p)
    p.add_argument("--md5", help="expected md5 of the archive (default: data.<dataset>.md5)")
    p.add_argument("--raw-dir", help="archive folder (default: <data.raw_dir>/<dataset>)")
    p.add_argument("--out-dir", help="output folder (default: data.prepared_dir)")
    _params_arg(p)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("synth", help="write a synthetic archive in the exact CIFAR format")
    _dataset_arg(p)
    p.add_argument("--out", required=True, type=Path, help="folder receiving the archive")
    p.add_argument("--train", type=int, default=5000, help="training images (default 5000)")
    p.add_argument("--test", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_synth)


def _fuse(text: str) -> int | str:
    """``--fuse``: ``auto`` (each row's G in ``sweep.fuse``) or a whole number G."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a whole number G >= 1, or auto (each row's sweep.fuse)"
        ) from None


def _fused_step_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--step",
        choices=STEP_FORMS,
        help="form of the fused groups' step (default: train.step, whose auto is compiled on "
        "CUDA and eager on the CPU): eager, compiled (forward, backward and update in one "
        "graph) or graph (CUDA graphs)",
    )


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train one run (one table cell, one seed)")
    _dataset_arg(p)
    p.add_argument("--row", required=True, help="a row of params.yaml: the keys of `rows`")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--original", action="store_true", help="the row's original recipe")
    g.add_argument("--k", type=float, help="k-decay with this k > 0 (k = 1: the plain schedule)")
    p.add_argument("--seed", type=int, default=0, help="seed >= 0 (default 0)")
    p.add_argument("--out", required=True, type=Path, help="run folder (metrics, history)")
    _params_arg(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser(
        "train-group", help="train runs of one row as one fused network (kdecay sweep --fuse)"
    )
    p.add_argument(
        "--stage",
        action="append",
        required=True,
        help="a training stage of dvc.yaml (train_kdecay@cifar10-wrn16_8-1.5-0); 2 or more",
    )
    _fused_step_arg(p)
    _params_arg(p)
    p.set_defaults(func=_cmd_train_group)


def _add_report_commands(sub: Any) -> None:
    p = sub.add_parser("aggregate", help="runs -> results/summary.csv")
    p.add_argument("--runs", type=Path, default=Path("results/runs"), help="runs folder")
    p.add_argument("--out", type=Path, default=Path("results/summary.csv"), help="summary CSV")
    p.add_argument("--plots", type=Path, help="also write the DVC plots' data files here")
    _params_arg(p)
    p.set_defaults(func=_cmd_aggregate)
    for name, out, what in (
        ("tables", "paper_figures/tables", "summary + appendix -> the regenerated tables"),
        ("figures", "paper_figures", "LR schedules, k-sweeps, training curves (PDF + PNG)"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument(
            "--summary",
            type=Path,
            default=Path("results/summary.csv"),
            help="the summary `kdecay aggregate` wrote (default: results/summary.csv)",
        )
        if name == "figures":
            p.add_argument(
                "--runs",
                type=Path,
                default=Path("results/runs"),
                help="run folders, for the training curves (default: results/runs)",
            )
        p.add_argument(
            "--appendix",
            type=Path,
            default=Path("paper/appendix_tables.csv"),
            help="the paper's printed numbers (default: paper/appendix_tables.csv)",
        )
        p.add_argument("--out", type=Path, default=Path(out), help=f"default: {out}")
        _params_arg(p)
        p.set_defaults(func=_cmd_tables if name == "tables" else _cmd_figures)


def _add_tools(sub: Any) -> None:
    p = sub.add_parser("check", help="validate params and this machine before dvc repro")
    _params_arg(p)
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("look", help="where each claim stands; --apply: the next look's seeds")
    p.add_argument("--apply", action="store_true", help="write the next look's seeds into params")
    summary = Path("results/summary.csv")
    p.add_argument("--summary", type=Path, default=summary, help=f"default: {summary}")
    appendix = Path("paper/appendix_tables.csv")
    p.add_argument("--appendix", type=Path, default=appendix, help=f"default: {appendix}")
    _params_arg(p)
    p.set_defaults(func=_cmd_look)
    p = sub.add_parser(
        "clean-checkpoints", help="remove checkpoints of recorded runs and of stale configs"
    )
    _params_arg(p)
    p.set_defaults(func=_cmd_clean)
    p = sub.add_parser("plan", help="runs, epochs, optimizer steps and GPU-hours of params")
    _params_arg(p)
    p.add_argument(
        "--fuse",
        type=_fuse,
        metavar="G",
        help="also the tasks and GPU-hours of `kdecay sweep --fuse G` (G or auto)",
    )
    p.add_argument(
        "--bench",
        type=Path,
        help="the measured fused speed-ups: a bench.json of `kdecay bench --fuse G` on the "
        "GPU, or kdecay proof's proof.json",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="the totals and the simulated scenarios (power, FWER, GPU-hours) as JSON",
    )
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("smoke", help="the whole pipeline on synthetic data, tiny models")
    p.add_argument("--workdir", type=Path, default=Path("smoke"), help="default: smoke")
    p.add_argument("--params", type=Path, default=None, help="default: params.smoke.yaml")
    p.add_argument("--reset", action="store_true", help="overwrite <workdir>/params.yaml")
    p.add_argument(
        "--fuse",
        type=int,
        default=1,
        metavar="G",
        help="train through `kdecay sweep --fuse G` (Ray on this machine's CPUs) before dvc "
        "repro; default 1: dvc repro trains every run alone (make smoke uses 4)",
    )
    p.set_defaults(func=_cmd_smoke)


def _add_sweep(sub: Any) -> None:
    p = sub.add_parser("sweep", help="every stale training run on Ray or SLURM, then dvc repro")
    p.add_argument("--engine", choices=("ray", "slurm"), default="ray", help="default: ray")
    p.add_argument(
        "--logs",
        type=Path,
        default=Path("results/logs"),
        help="one log per run, and sweep.jsonl (default: results/logs)",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        help="I/N: this clone's share of the runs (default 0/1: all)",
    )
    p.add_argument(
        "--fuse",
        type=_fuse,
        default=1,
        metavar="G",
        help="train up to G runs of one row as one fused network, one task each (default 1: "
        "every run alone; auto: each row's G in sweep.fuse of the params; see the README "
        "before using it on a GPU)",
    )
    _fused_step_arg(p)
    g = p.add_argument_group("ray")
    g.add_argument("--address", help="join a running Ray cluster (default: start one here)")
    g.add_argument("--gpus", type=int, help="GPUs a local Ray declares (default: detected)")
    g.add_argument("--cpus", type=int, help="CPUs a local Ray declares (default: detected)")
    g = p.add_argument_group("slurm (submitit)")
    g.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    g.add_argument("--time", help="per-job limit HH:MM:SS, then requeued (default 24:00:00)")
    g.add_argument("--gpus-per-job", type=int, help="default 1")
    g.add_argument("--cpus-per-job", type=int, help="default 4")
    g.add_argument("--array-parallelism", type=int, help="jobs at once (default 64)")
    g.add_argument(
        "--cluster",
        choices=("slurm", "local", "debug"),
        help="submitit executor: slurm (default); local runs the same jobs as processes on "
        "this machine; debug runs them one by one inside this process (for debugging)",
    )
    _params_arg(p)
    p.set_defaults(func=_cmd_sweep)


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="training throughput vs a standard PyTorch pipeline")
    p.add_argument("--models", nargs="+", help="rows or model names (default: every row)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), help="default: train.device")
    p.add_argument("--steps", type=int, default=50, help="full batches per pass (default 50)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes: median (default 3)")
    p.add_argument("--out", type=Path, default=Path("results/bench"), help="report folder")
    p.add_argument(
        "--step",
        choices=("compiled", "graph"),
        help="form of the ours_step column (default: what train.step runs on this device, "
        "compiled with auto on CUDA; where that is eager, as auto is on the CPU, compiled: "
        "the ours_eager column measures eager already)",
    )
    p.add_argument(
        "--shared", type=int, default=0, help="GPU: 1..N processes of each model on one GPU"
    )
    p.add_argument(
        "--fuse",
        type=int,
        default=0,
        metavar="G",
        help="also G runs of each model fused in one network vs the same G one by one",
    )
    _params_arg(p)
    p.set_defaults(func=_cmd_bench)


def _add_proof(sub: Any) -> None:
    p = sub.add_parser(
        "proof", help="CUDA checks + benchmark of every model in one call, report after each step"
    )
    p.add_argument(
        "--out", type=Path, default=Path("results/proof"), help="report folder (proof.json, .md)"
    )
    p.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda", help="cpu: tiny sizes (default cuda)"
    )
    p.add_argument(
        "--budget-seconds",
        type=float,
        default=None,
        help="wall-clock budget, compile times included; every step and model has a hard "
        "deadline within it (default 540 on cuda: one 10-minute call; 240 on cpu)",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        default=None,
        help="continue the stopped proof in DIR (its finished steps and models are kept)",
    )
    p.add_argument(
        "--params",
        type=Path,
        default=None,
        help="models to benchmark (default: params.yaml on cuda, params.smoke.yaml on cpu)",
    )
    p.set_defaults(func=_cmd_proof)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kdecay`` command."""
    parser = argparse.ArgumentParser(prog="kdecay", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = (_add_data_commands, _add_train, _add_report_commands, _add_tools, _add_sweep)
    for add in (*commands, _add_bench, _add_proof):
        add(sub)
    for name, command in sub.choices.items():  # one paragraph each, and every default shown
        command.description = DESCRIPTIONS[name]
        command.formatter_class = HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kdecay`` and ``python -m kdecay``."""
    from kdecay.checks import CommandFailedError, DataError

    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except CommandFailedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"interrupted: {interrupt}" if str(interrupt) else "interrupted", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0
