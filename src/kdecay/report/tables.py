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
from kdecay.config import Config, load_config, method_dir
from kdecay.data.datasets import DATASETS
from kdecay.fileio import atomic_write_many
from kdecay.report.render import to_latex, to_markdown
from kdecay.report.summary import read_csv, read_summary
from kdecay.report.verdict import compare, verdict

DATASET_TITLES = {name: info.title for name, info in DATASETS.items()}
PARAMS_TOLERANCE = 0.05  # relative difference above which the printed parameter count is flagged


def load_appendix(path: Path) -> pd.DataFrame:
    """The transcribed appendix tables (one line per dataset and row)."""
    if not path.is_file():
        raise ConfigError(f"appendix table {path} not found: it ships as paper/appendix_tables.csv")
    return read_csv(path, ["dataset", "row", "original_err", "kdecay_err", "k"])


def _cell(cells: pd.DataFrame, dataset: str, row: str, method: str) -> dict[str, Any] | None:
    hit = cells[(cells["dataset"] == dataset) & (cells["row"] == row) & (cells["method"] == method)]
    return None if hit.empty else hit.iloc[0].to_dict()


def format_cell(cell: dict[str, Any] | None) -> str:
    """``4.12``, ``4.12 ± 0.08 (n=3)``, or the reason there is no number."""
    if cell is None:
        return "not run"
    n = int(cell["n"])
    counts = {k: int(cell.get(f"n_{k}", 0) or 0) for k in ("diverged", "corrupt", "missing")}
    total = n + sum(counts.values())
    if n == 0:
        kind = next((k for k in counts if counts[k]), "missing")
        return f"{kind} ({counts[kind]}/{total})"
    txt = f"{cell['mean_error']:.2f}"
    if n >= 2:
        txt += f" ± {cell['std_error']:.2f} (n={n})"
    notes = [f"{c} {k}" for k, c in counts.items() if c]
    return txt + (f" [{', '.join(notes)}]" if notes else "")


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


def _at_paper_k_text(paper_k: float | None, ks: list[float], cell: dict[str, Any] | None) -> str:
    if paper_k is None:
        return "n/a"
    return f"k={paper_k:g} not swept" if paper_k not in ks else format_cell(cell)


def _table_line(a: pd.Series, dataset: str, cells: pd.DataFrame, config: Config) -> dict[str, Any]:
    """One line of the regenerated table: display strings plus numeric companions."""
    row, ks = a["row"], list(config.kdecay.ks)
    sgdr = not config.rows[row].has_original_stage
    orig = _cell(cells, dataset, row, method_dir("kdecay", 1.0) if sgdr else "original")
    k_cells = {k: _cell(cells, dataset, row, method_dir("kdecay", k)) for k in ks}
    done = {k: c for k, c in k_cells.items() if c is not None and int(c["n"]) > 0}
    best_k = min(done, key=lambda k: done[k]["mean_error"]) if done else None
    best_err = done[best_k]["mean_error"] if best_k is not None else math.nan
    paper_k = None if pd.isna(a["k"]) else float(a["k"])
    at_paper = k_cells.get(paper_k) if paper_k is not None else None
    num_classes = DATASETS[dataset].num_classes
    measured = _measured_params(
        config, row, orig or (done[best_k] if best_k else None), num_classes
    )
    paper_kd = math.nan if pd.isna(a["kdecay_err"]) else float(a["kdecay_err"])
    paper_gain = float(a["original_err"]) - paper_kd
    ours = compare(orig, at_paper)
    paper_orig_txt = f"{a['original_err']:.2f}"
    if a["original_source"] != "appendix":
        paper_orig_txt += f" [{a['original_source']}]"
    return {
        "model": a["model"],
        "config": str(a["config"]),
        "params": _params_text(measured, float(a["params_m_printed"])),
        "paper_original": paper_orig_txt,
        "ours_original": format_cell(orig) + (" (SGDR, k=1)" if sgdr else ""),
        "paper_kdecay": "not in text" if math.isnan(paper_kd) else f"{paper_kd:.2f} (k={a['k']:g})",
        "ours_at_paper_k": _at_paper_k_text(paper_k, ks, at_paper),
        "ours_best": f"k={best_k:g}: {best_err:.2f}" if best_k is not None else "no completed run",
        "reproduced": (
            f"n/a (paper's k={paper_k:g} not in kdecay.ks)"
            if paper_k is not None and paper_k not in ks
            else verdict(paper_gain, ours, no_number_reason(orig, at_paper))
        ),
        # numeric companions for the CSV
        "row": row,
        "params_measured": measured,
        "params_printed": float(a["params_m_printed"]) * 1e6,
        "paper_original_err": float(a["original_err"]),
        "our_original_err": _mean(orig),
        "paper_kdecay_err": paper_kd,
        "paper_k": paper_k if paper_k is not None else math.nan,
        "our_err_at_paper_k": _mean(at_paper),
        "our_best_k": best_k if best_k is not None else math.nan,
        "our_best_err": best_err,
        "our_improvement": ours.gain if ours else math.nan,
        "our_improvement_se": ours.se if ours else math.nan,
        "welch_p": ours.p_better if ours else math.nan,
        "paper_improvement": paper_gain,
    }


def build_table(
    dataset: str, appendix: pd.DataFrame, cells: pd.DataFrame, config: Config
) -> pd.DataFrame:
    """The regenerated table of one dataset: display strings plus numeric companions."""
    app = appendix[(appendix["dataset"] == dataset) & appendix["row"].isin(list(config.rows))]
    return pd.DataFrame([_table_line(a, dataset, cells, config) for _, a in app.iterrows()])


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
    _, cells = read_summary(summary, config)
    appendix = load_appendix(appendix_path)
    prefix = "SYNTHETIC DATA (smoke run, not CIFAR): " if config.synthetic else ""
    files: dict[Path, bytes] = {}
    combined = []
    for dataset in config.datasets:
        table = build_table(dataset, appendix, cells, config)
        title = (
            f"{prefix}{DATASET_TITLES.get(dataset, dataset)} test error (%), "
            "paper vs this reproduction"
        )
        notes = footnotes(dataset, appendix)
        md = to_markdown(table, title, notes)
        combined.append(md)
        for suffix, text in (
            ("md", md),
            ("tex", to_latex(table, title, notes)),
            ("csv", table.to_csv(index=False, float_format="%.4f")),
        ):
            files[out / f"{dataset}.{suffix}"] = text.encode()
    files[out / "tables.md"] = "\n".join(combined).encode()
    atomic_write_many(files)  # all of them or none
    written = list(files)
    print("\n".join(combined))
    print(f"tables: wrote {len(written)} files under {out}")
    return written
