"""Summary + the paper's appendix -> the regenerated tables (Markdown, LaTeX, CSV).

One table per dataset, one line per appendix row: measured parameters (the printed value
flagged where it differs by more than 5%), the paper's original and k-decay errors beside ours,
our best k, and whether the paper's improvement over the original recipe is reproduced.
Missing or diverged runs are written as such, never as a number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from kdecay.checks import ConfigError
from kdecay.config import Config, load_config
from kdecay.data.datasets import DATASETS
from kdecay.fileio import atomic_write_many
from kdecay.report.claims import LineCells, line_cells
from kdecay.report.looks import replay_looks
from kdecay.report.render import to_latex, to_markdown
from kdecay.report.summary import read_csv, read_summary
from kdecay.report.verdict import claim_text, component_text
from kdecay.stats.power import best_of_k_optimism

DATASET_TITLES = {name: info.title for name, info in DATASETS.items()}
PARAMS_TOLERANCE = 0.05  # relative difference above which the printed parameter count is flagged


def load_appendix(path: Path) -> pd.DataFrame:
    """The transcribed appendix tables (one line per dataset and row)."""
    if not path.is_file():
        raise ConfigError(f"appendix table {path} not found: it ships as paper/appendix_tables.csv")
    return read_csv(path, ["dataset", "row", "original_err", "kdecay_err", "k"])


def format_cell(cell: dict[str, Any] | None) -> str:
    """``4.12``, ``4.12 ± 0.08 (n=2)``, ``4.12 ± 0.08 (median 4.10, n=9)``, or the reason there
    is no number; diverged, corrupt or missing seeds are named."""
    if cell is None:
        return "not run"
    n = int(cell["n"])
    counts = seed_counts(cell)
    total = n + sum(counts.values())
    if n == 0:
        kind = next((k for k in counts if counts[k]), "missing")
        return f"{kind} ({counts[kind]}/{total})"
    txt = f"{cell['mean_error']:.2f}"
    if n >= 3:
        txt += f" ± {cell['std_error']:.2f} (median {cell['median_error']:.2f}, n={n})"
    elif n == 2:
        txt += f" ± {cell['std_error']:.2f} (n={n})"
    notes = [f"{c} {k}" for k, c in counts.items() if c]
    return txt + (f" [{', '.join(notes)}]" if notes else "")


def seed_counts(cell: dict[str, Any] | None) -> dict[str, int]:
    """Seeds of a cell without a result: ``{"diverged": .., "corrupt": .., "missing": ..}``."""
    if cell is None:
        return {"diverged": 0, "corrupt": 0, "missing": 0}
    return {k: int(cell.get(f"n_{k}", 0) or 0) for k in ("diverged", "corrupt", "missing")}


def _mean(cell: dict[str, Any] | None) -> float:
    return math.nan if cell is None or int(cell["n"]) == 0 else float(cell["mean_error"])


def no_number_reason(*cells: dict[str, Any] | None) -> str:
    """Why a comparison has no number: ``runs diverged``, ``metrics corrupt`` or ``runs
    missing`` (the first that applies to a cell without completed runs)."""
    empty = [c for c in cells if c is not None and int(c["n"]) == 0]
    if any(int(c.get("n_diverged", 0) or 0) for c in empty):
        return "runs diverged"
    if any(int(c.get("n_corrupt", 0) or 0) for c in empty):
        return "metrics corrupt"
    return "runs missing"


def _measured_params(
    config: Config, row: str, cell: dict[str, Any] | None, num_classes: int
) -> float:
    if cell is not None and not pd.isna(cell.get("params")):
        return float(cell["params"])
    from kdecay.models import build_from_spec, count_params  # only when no run recorded it

    return float(count_params(build_from_spec(config.rows[row].model, num_classes)))


def _params_text(measured: float, printed_m: float) -> str:
    """Our parameter count, with the printed one where they differ by > PARAMS_TOLERANCE."""
    txt = f"{measured / 1e6:.2f}M"
    if abs(measured - printed_m * 1e6) / (printed_m * 1e6) > PARAMS_TOLERANCE:
        txt += f" (printed {printed_m:g}M)"
    return txt


def _at_paper_k_text(line: LineCells) -> str:
    if line.paper_k is None:
        return "n/a"
    return format_cell(line.at_paper) if line.at_paper else f"k={line.paper_k:g} not run"


def _best_k(line: LineCells, config: Config) -> tuple[float | None, str]:
    """Our lowest mean error over the swept k, labelled as chosen on the test set, with its
    cell's n, a mark when it beat cells of more seeds (a mean of fewer seeds is more likely
    to be lowest by chance), and its expected optimism when k has no effect
    (:func:`kdecay.stats.power.best_of_k_optimism`)."""
    done = {k: c for k, c in line.k_cells.items() if c is not None and int(c["n"]) > 0}
    if not done:
        return None, "no completed run"
    best = min(done, key=lambda k: done[k]["mean_error"])
    n_best = int(done[best]["n"])
    text = f"k={best:g}: {done[best]['mean_error']:.2f} (n={n_best}; chosen on the test set"
    beaten = sorted(k for k, c in done.items() if int(c["n"]) > n_best)
    if beaten:
        text += f"; fewer seeds than the k it beat ({', '.join(f'{k:g}' for k in beaten)})"
    sigma = config.stats.seed_std.get(line.dataset)
    if sigma is not None and len(done) > 1:
        n = min(int(c["n"]) for c in done.values())
        text += f"; optimism if k had no effect: {best_of_k_optimism(len(done), n, sigma):.2f}"
    return best, text + ")"


def _component(line: LineCells, which: str) -> str:
    """One comparison of the claim in words (:func:`kdecay.report.verdict.component_text`)."""
    if which == "k1" and line.sgdr:
        return "same (the SGDR row's original recipe is its k = 1 run)"
    if not line.printed:
        return "n/a (paper's k-decay result not in the text)"
    if line.at_paper is None:
        return f"n/a (paper's k={line.paper_k:g} not run)"
    base = line.original if which == "original" else line.control
    comp = line.components.get(which)
    if comp is None:
        return f"n/a ({no_number_reason(base, line.at_paper)})"
    return component_text(comp, line.paper_gain)


def _table_line(line: LineCells, a: pd.Series, config: Config, m: int) -> dict[str, Any]:
    """One line of the regenerated table: display strings plus numeric companions."""
    best_k, best_text = _best_k(line, config)
    measured = _measured_params(
        config,
        line.row,
        line.original or line.control or line.at_paper,
        DATASETS[line.dataset].num_classes,
    )
    paper_kd = math.nan if pd.isna(a["kdecay_err"]) else float(a["kdecay_err"])
    paper_orig_txt = f"{a['original_err']:.2f}"
    if a["original_source"] != "appendix":
        paper_orig_txt += f" [{a['original_source']}]"
    vs_orig, vs_k1 = line.components.get("original"), line.components.get("k1")
    return {
        "model": a["model"],
        "config": str(a["config"]),
        "params": _params_text(measured, float(a["params_m_printed"])),
        "paper_original": paper_orig_txt,
        "ours_original": format_cell(line.original) + (" (SGDR, k=1)" if line.sgdr else ""),
        "paper_kdecay": "not in text" if math.isnan(paper_kd) else f"{paper_kd:.2f} (k={a['k']:g})",
        "ours_at_paper_k": _at_paper_k_text(line),
        "ours_k1": format_cell(line.control),
        "ours_best": best_text,
        "vs_original": _component(line, "original"),
        "vs_k1": _component(line, "k1"),
        "verdict": claim_text(line, config.stats.alpha, m),
        # numeric companions for the CSV
        "row": line.row,
        "params_measured": measured,
        "params_printed": float(a["params_m_printed"]) * 1e6,
        "paper_original_err": float(a["original_err"]),
        "our_original_err": _mean(line.original),
        "paper_kdecay_err": paper_kd,
        "paper_k": line.paper_k if line.paper_k is not None else math.nan,
        "our_err_at_paper_k": _mean(line.at_paper),
        "our_k1_err": _mean(line.control),
        "our_best_k_on_test_set": best_k if best_k is not None else math.nan,
        "our_best_err_on_test_set": (
            line.k_cells[best_k]["mean_error"] if best_k is not None else math.nan
        ),
        "paper_improvement": line.paper_gain,
        **{
            f"{name}_{field}": getattr(test, field) if test else math.nan
            for name, test in (("vs_original", vs_orig), ("vs_k1", vs_k1))
            for field in ("gain", "se", "p")
        },
        "claim_p_iut": line.test.p if line.test is not None else math.nan,
        "claim_state": line.look.state if line.look is not None else "",
        "claim_look": line.look.index + 1 if line.look is not None else 0,
        "claim_seeds_per_arm": line.look.n if line.look is not None else 0,
    }


def build_tables(
    appendix: pd.DataFrame, runs: pd.DataFrame, cells: pd.DataFrame, config: Config
) -> dict[str, pd.DataFrame]:
    """The regenerated table of every dataset, its claims tested as one family."""
    pairs = [
        (line_cells(a, dataset, cells, runs, config), a)
        for dataset in config.datasets
        for _, a in appendix[
            (appendix["dataset"] == dataset) & appendix["row"].isin(list(config.rows))
        ].iterrows()
    ]
    m = replay_looks([line for line, _ in pairs], runs, config.stats.alpha, config.stats.looks)
    return {
        dataset: pd.DataFrame(
            [_table_line(line, a, config, m) for line, a in pairs if line.dataset == dataset]
        )
        for dataset in config.datasets
    }


def footnotes(dataset: str, appendix: pd.DataFrame) -> list[str]:
    """The appendix's own notes plus flaws found by comparing its lines."""
    app = appendix[appendix["dataset"] == dataset]
    notes = [
        f"{r['model']} {r['config']}: {r['note']}"
        for _, r in app.iterrows()
        if isinstance(r["note"], str) and r["note"]
    ]
    printed = app.dropna(subset=["kdecay_err"])
    for (err, k), g in printed.groupby(["kdecay_err", "k"]):
        if len(g) > 1:
            names = " and ".join(f"{m} {c}" for m, c in zip(g["model"], g["config"], strict=True))
            notes.append(
                f"the paper prints the same k-decay result {err:.2f} at k = {k:g} for "
                f"{names}: probably a transcription error in the paper"
            )
    return notes


def write_tables(
    summary: Path, appendix_path: Path, out: Path, params_file: Path = Path("params.yaml")
) -> list[Path]:
    """Write ``<dataset>.{md,tex,csv}`` per dataset and ``tables.md`` with all of them."""
    config = load_config(params_file)
    runs, cells = read_summary(summary, config)
    appendix = load_appendix(appendix_path)
    prefix = "SYNTHETIC DATA (smoke run, not CIFAR): " if config.synthetic else ""
    files: dict[Path, bytes] = {}
    combined = []
    tables = build_tables(appendix, runs, cells, config)
    for dataset in config.datasets:
        table = tables[dataset]
        title = (
            f"{prefix}{DATASET_TITLES.get(dataset, dataset)} test error (%), "
            "paper vs this reproduction"
        )
        notes = footnotes(dataset, appendix)
        md = to_markdown(table, title, notes)
        combined.append(md)
        for suffix, text in (
            ("md", md),
            ("tex", to_latex(table, title, notes, config.stats.alpha)),
            ("csv", table.to_csv(index=False, float_format="%.4f")),
        ):
            files[out / f"{dataset}.{suffix}"] = text.encode()
    files[out / "tables.md"] = "\n".join(combined).encode()
    atomic_write_many(files)  # all of them or none
    written = list(files)
    print("\n".join(combined))
    print(f"tables: wrote {len(written)} files under {out}")
    return written
