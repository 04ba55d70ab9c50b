"""The regenerated tables as text: GitHub Markdown and a LaTeX table that compiles in a
standard article (booktabs + graphicx), long explanations moved to notes under it."""

from __future__ import annotations

import pandas as pd

__all__ = ["COLUMNS", "to_latex", "to_markdown"]

COLUMNS = {
    "model": "Model",
    "config": "Config",
    "params": "Params (ours)",
    "paper_original": "Paper orig. err",
    "ours_original": "Our orig. err",
    "paper_kdecay": "Paper k-decay err (k)",
    "ours_at_paper_k": "Our err at paper k",
    "ours_best": "Our best k: err",
    "reproduced": "Improvement reproduced?",
}


def to_markdown(table: pd.DataFrame, title: str, notes: list[str]) -> str:
    """A GitHub-flavoured Markdown table with a title and footnotes."""
    head = list(COLUMNS.values())
    out = [
        f"### {title}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    out += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for _, r in table.iterrows()]
    out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def _tex_escape(s: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("≥", r"$\geq$"),
    ):
        s = s.replace(a, b)
    return s


TEX_HEADERS = {
    "model": "Model",
    "config": "Config",
    "params": "Params",
    "paper_original": "Paper orig.",
    "ours_original": "Ours orig.",
    "paper_kdecay": "Paper k-decay (k)",
    "ours_at_paper_k": "Ours at paper k",
    "ours_best": "Ours best k",
    "reproduced": "Reproduced?",
}


def _tex_cells(table: pd.DataFrame) -> tuple[list[list[str]], list[str]]:
    """Short LaTeX cells; the long explanations become lettered notes under the table."""
    rows, notes = [], []
    for _, r in table.iterrows():
        cells = {c: _tex_escape(str(r[c])) for c in TEX_HEADERS}
        for col, sep in (("paper_original", " ["), ("reproduced", " (")):
            head, found, rest = str(r[col]).partition(sep)
            if found:
                mark = chr(ord("a") + len(notes))
                cells[col] = rf"{_tex_escape(head)}\textsuperscript{{{mark}}}"
                detail = _tex_escape((found + rest).strip(" []()"))
                notes.append(rf"\textsuperscript{{{mark}}} {_tex_escape(str(r['model']))} "
                             rf"{_tex_escape(str(r['config']))}: {detail}")  # fmt: skip
        rows.append([cells[c] for c in TEX_HEADERS])
    return rows, notes


def to_latex(table: pd.DataFrame, title: str, notes: list[str]) -> str:
    """A booktabs table scaled to the text width; compiles in a standard article with
    ``\\usepackage{booktabs,graphicx}`` (the first line of the file says so)."""
    rows, marks = _tex_cells(table)
    lines = [
        r"% needs \usepackage{booktabs} and \usepackage{graphicx} (for \resizebox)",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex_escape(title)}}}",
        r"\resizebox{\linewidth}{!}{%",
        r"\begin{tabular}{ll" + "r" * (len(TEX_HEADERS) - 3) + "l}",
        r"\toprule",
        " & ".join(TEX_HEADERS.values()) + r" \\",
        r"\midrule",
        *(" & ".join(cells) + r" \\" for cells in rows),
        r"\bottomrule",
        r"\end{tabular}}",
    ]
    all_notes = marks + [_tex_escape(n) for n in notes]
    if all_notes:
        lines.append(r"\par\smallskip{\footnotesize " + r" \\ ".join(all_notes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
