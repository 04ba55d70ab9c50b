"""``kdecay <command>``: one subcommand per pipeline stage, plus synth, smoke and bench.

Each subcommand imports its module lazily, so ``kdecay --help`` is instant. Expected failures
(bad params, missing data, failed checksums) print one clear ``error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kdecay.data.datasets import DATASETS


def _params_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params", default="params.yaml", type=Path, help="params file (default: params.yaml)"
    )


def _cmd_download(a: argparse.Namespace) -> None:
    from kdecay.config import load_params
    from kdecay.data.download import download

    params = load_params(a.params) if a.params.is_file() or a.url is None else {}
    data = params.get("data", {}) if params else {}
    ds = data.get(a.dataset, {})
    raw = Path(a.raw_dir) if a.raw_dir else Path(data.get("raw_dir", "data/raw")) / a.dataset
    download(a.dataset, raw, url=a.url or ds.get("url"), md5=a.md5 or ds.get("md5"))


def _cmd_prepare(a: argparse.Namespace) -> None:
    from kdecay.config import load_params
    from kdecay.data.prepare import prepare

    params = load_params(a.params) if a.params.is_file() else {}
    data = params.get("data", {})
    raw = Path(a.raw_dir) if a.raw_dir else Path(data.get("raw_dir", "data/raw")) / a.dataset
    prepare(
        a.dataset,
        raw,
        Path(a.out_dir or data.get("prepared_dir", "data/prepared")),
        md5=a.md5 or data.get(a.dataset, {}).get("md5"),
    )


def _cmd_synth(a: argparse.Namespace) -> None:
    from kdecay.data.synth import make_archive

    path, md5 = make_archive(a.dataset, a.out, n_train=a.train, n_test=a.test, seed=a.seed)
    print(f"wrote {path}")
    print(f"md5 {md5}")


def _cmd_train(a: argparse.Namespace) -> None:
    from kdecay.config import load_params, resolve_run
    from kdecay.train import train_run

    spec = resolve_run(
        load_params(a.params), a.dataset, a.row, "original" if a.original else "kdecay", a.k, a.seed
    )
    train_run(spec, a.out)


def _cmd_aggregate(a: argparse.Namespace) -> None:
    from kdecay.report.aggregate import aggregate

    aggregate(a.runs, a.out, params_file=a.params)


def _cmd_tables(a: argparse.Namespace) -> None:
    from kdecay.report.tables import write_tables

    write_tables(a.summary, a.appendix, a.out, params_file=a.params)


def _cmd_figures(a: argparse.Namespace) -> None:
    from kdecay.report.figures import write_figures

    write_figures(a.summary, a.runs, a.appendix, a.out, params_file=a.params)


def _cmd_smoke(a: argparse.Namespace) -> None:
    from kdecay.sweep.smoke import run_smoke

    run_smoke(a.workdir, params_file=a.params)


def _cmd_parallel(a: argparse.Namespace) -> None:
    from kdecay.sweep.parallel import run_parallel

    if run_parallel(a.gpus, a.per_gpu, a.logs):
        raise SystemExit(1)


def _cmd_bench(a: argparse.Namespace) -> None:
    from kdecay.bench import run_bench

    run_bench(
        models=a.models,
        device=a.device,
        steps=a.steps,
        warmup=a.warmup,
        out_dir=a.out,
        params_file=a.params,
        compile_model=a.compile,
        shared=a.shared,
    )


def _add_download(sub: Any) -> None:
    p = sub.add_parser("download", help="fetch a CIFAR archive and verify its md5")
    p.add_argument("--dataset", required=True)
    p.add_argument("--url", help="override the URL of params.yaml (file:// works)")
    p.add_argument("--md5", help="override the expected md5 of params.yaml")
    p.add_argument("--raw-dir", help="target folder (default: <data.raw_dir>/<dataset>)")
    _params_arg(p)
    p.set_defaults(func=_cmd_download)


def _add_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help="verify, extract safely and convert to one .pt file")
    p.add_argument("--dataset", required=True)
    p.add_argument("--md5", help="override the expected md5 of params.yaml")
    p.add_argument("--raw-dir")
    p.add_argument("--out-dir")
    _params_arg(p)
    p.set_defaults(func=_cmd_prepare)


def _add_synth(sub: Any) -> None:
    p = sub.add_parser("synth", help="write a synthetic archive in the exact CIFAR format")
    p.add_argument("--dataset", required=True, choices=tuple(DATASETS))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--train", type=int, default=5000, help="training images (default 5000)")
    p.add_argument("--test", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train one run (one table cell, one seed)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--row", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--original", action="store_true", help="the row's original recipe")
    g.add_argument("--k", type=float, help="k-decay with this k (k = 1: the plain schedule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="run folder")
    _params_arg(p)
    p.set_defaults(func=_cmd_train)


def _add_aggregate(sub: Any) -> None:
    p = sub.add_parser("aggregate", help="runs -> results/summary.csv")
    p.add_argument("--runs", type=Path, default=Path("results/runs"))
    p.add_argument("--out", type=Path, default=Path("results/summary.csv"))
    _params_arg(p)
    p.set_defaults(func=_cmd_aggregate)


def _add_tables(sub: Any) -> None:
    p = sub.add_parser("tables", help="summary + appendix -> paper_figures/tables/")
    p.add_argument("--summary", type=Path, default=Path("results/summary.csv"))
    p.add_argument("--appendix", type=Path, default=Path("paper/appendix_tables.csv"))
    p.add_argument("--out", type=Path, default=Path("paper_figures/tables"))
    _params_arg(p)
    p.set_defaults(func=_cmd_tables)


def _add_figures(sub: Any) -> None:
    p = sub.add_parser("figures", help="LR curves, k-sweeps, training curves")
    p.add_argument("--summary", type=Path, default=Path("results/summary.csv"))
    p.add_argument("--runs", type=Path, default=Path("results/runs"))
    p.add_argument("--appendix", type=Path, default=Path("paper/appendix_tables.csv"))
    p.add_argument("--out", type=Path, default=Path("paper_figures"))
    _params_arg(p)
    p.set_defaults(func=_cmd_figures)


def _add_smoke(sub: Any) -> None:
    p = sub.add_parser("smoke", help="the whole pipeline on synthetic data, tiny models")
    p.add_argument("--workdir", type=Path, default=Path("smoke"))
    p.add_argument(
        "--params",
        type=Path,
        default=None,
        help="smoke params (default: the packaged smoke_params.yaml)",
    )
    p.set_defaults(func=_cmd_smoke)


def _add_parallel(sub: Any) -> None:
    p = sub.add_parser("parallel", help="dvc repro with the training runs several at a time")
    p.add_argument(
        "--gpus",
        default=None,
        help="GPU indices, e.g. 0,1,2,3, or 'cpu' (default: every visible GPU)",
    )
    p.add_argument(
        "--per-gpu",
        type=int,
        default=1,
        help="runs sharing one GPU at a time (2-4 helps thin models)",
    )
    p.add_argument("--logs", type=Path, default=Path("results/logs"), help="one log per run")
    p.set_defaults(func=_cmd_parallel)


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="training throughput vs a standard PyTorch pipeline")
    p.add_argument("--models", nargs="+", default=None, help="rows/models (default: all)")
    p.add_argument(
        "--device", choices=("cuda", "cpu"), default=None, help="default: cuda when present"
    )
    p.add_argument("--steps", type=int, default=50, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up steps")
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile our pipeline (default: train.compile of params)",
    )
    p.add_argument(
        "--shared",
        type=int,
        default=0,
        help="GPU only: also measure 1..N processes sharing one GPU",
    )
    _params_arg(p)
    p.set_defaults(func=_cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kdecay`` command."""
    parser = argparse.ArgumentParser(prog="kdecay", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_download(sub)
    _add_prepare(sub)
    _add_synth(sub)
    _add_train(sub)
    _add_aggregate(sub)
    _add_tables(sub)
    _add_figures(sub)
    _add_smoke(sub)
    _add_parallel(sub)
    _add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kdecay`` and ``python -m kdecay``."""
    from kdecay.checks import ConfigError, DataError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
