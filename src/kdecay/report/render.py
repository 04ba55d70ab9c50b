"""The regenerated tables as text: GitHub Markdown and a LaTeX table that compiles in a
standard article (booktabs), long explanations moved to notes under it."""

from __future__ import annotations

import re

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
    "ours_k1": "Our k=1 err",
    "ours_best": "Our best k (chosen on the test set)",
    "reproduced": "Reproduced vs original?",
    "effect_of_k": "Better than k=1?",
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


TEX_HEADERS = {  # two lines each (a nested tabular: no package needed)
    "model": ("", "Model"),
    "params": ("Params", "(M)"),
    "paper_original": ("Paper", "orig."),
    "ours_original": ("Ours", "orig."),
    "paper_kdecay": ("Paper", "k-decay (k)"),
    "ours_at_paper_k": ("Ours at", "paper k"),
    "ours_k1": ("Ours", "k=1"),
    "ours_best": ("Ours best", "k (k)"),
    "reproduced": ("vs", "orig.?"),
    "effect_of_k": ("vs", "k=1?"),
}
TEX_MODEL_WIDTH = "1.35cm"
TEX_MODEL_NAMES = {  # the appendix's model names, short enough for the narrow model column
    "ResNet (pre-activation)": ("PreAct-ResNet", ""),
    "Wide ResNet": ("WRN", ""),
    "Wide ResNet with SGDR": ("WRN", " + SGDR"),
    "DenseNet-BC (growth k=12)": ("DenseNet-BC", ""),
}  # the model column wraps; every other cell is a number and a mark
# what a LaTeX cell keeps: a leading number (error, mean ± std, parameter count, "k=3: 4.00")
_NUMBER = re.compile(r"^(k=[\d.]+: )?[\d.]+M?( ± [\d.]+)?( \(k=[\d.]+\))?")
_MILLIONS = re.compile(r"^([\d.]+)M$")  # "1.73M" -> "1.73", as the header says
_BEST = re.compile(r"^k=([\d.]+): ([\d.]+)")  # "k=3: 4.00" -> "4.00 (3)", as the header says


def _tex_split(col: str, text: str) -> tuple[str, str]:
    """(what the cell shows, the rest for a note): a number stays in the cell, any words go to
    a note; the verdict keeps its first words (``yes``, ``no``, ``n/a``) before ``(``."""
    if col in ("reproduced", "effect_of_k"):
        head, _, rest = text.partition(" (")
        return head, rest.removesuffix(")")
    match = _NUMBER.match(text)
    head = match.group(0) if match else "--"
    rest = text[len(head) :].strip() if match else text
    head = head.replace("(k=", "(")  # the header says "(k)"
    head = _MILLIONS.sub(r"\1", _BEST.sub(r"\2 (\1)", head))
    # only the one bracket pair around the whole rest: brackets inside the note stay
    if rest[:1] + rest[-1:] in ("()", "[]"):
        rest = rest[1:-1]
    return head, rest


def _header_words(col: str) -> str:
    """The two-line header of ``col`` as words: ``reproduced?``, ``ours at paper k``."""
    top, bottom = TEX_HEADERS[col]
    return (top[:-1] + bottom if top.endswith("-") else f"{top} {bottom}").strip()


def _tex_cells(table: pd.DataFrame) -> tuple[list[list[str]], list[str]]:
    """Short LaTeX cells; everything but the numbers becomes lettered notes under the table."""
    rows, notes = [], []
    for _, r in table.iterrows():
        short, suffix = TEX_MODEL_NAMES.get(str(r["model"]), (str(r["model"]), ""))
        name = f"{short}-{r['config']}{suffix}"
        cells = {"model": rf"\parbox[t]{{{TEX_MODEL_WIDTH}}}{{\raggedright {_tex_escape(name)}}}"}
        for col in list(TEX_HEADERS)[1:]:
            head, detail = _tex_split(col, str(r[col]))
            cells[col] = _tex_escape(head)
            if detail:
                mark = chr(ord("a") + len(notes) % 26) * (1 + len(notes) // 26)
                cells[col] += rf"\textsuperscript{{{mark}}}"
                notes.append(
                    rf"\textsuperscript{{{mark}}} {_tex_escape(name)}, "
                    rf"{_header_words(col)}: {_tex_escape(detail)}"
                )
        rows.append([cells[c] for c in TEX_HEADERS])
    return rows, notes


def to_latex(table: pd.DataFrame, title: str, notes: list[str]) -> str:
    """A full-width (``table*``) booktabs table in ``\\scriptsize`` (7 pt) with narrow column gaps,
    never scaled: it fits a standard article's text width at a readable size. Needs only
    ``\\usepackage{booktabs}`` (the first line of the file says so); include it with
    ``\\input{cifar10.tex}``."""
    rows, marks = _tex_cells(table)
    lines = [
        r"% needs \usepackage{booktabs}; include with \input{<this file>}",
        r"\begin{table*}[t]",
        r"\centering",
        r"\scriptsize",
        r"\setlength{\tabcolsep}{1.5pt}",
        rf"\caption{{{_tex_escape(title)}}}",
        r"\begin{tabular}{l" + "r" * (len(TEX_HEADERS) - 2) + "l}",
        r"\toprule",
        " & ".join(
            rf"\begin{{tabular}}[b]{{@{{}}c@{{}}}}{top}\\{bottom}\end{{tabular}}"
            for top, bottom in TEX_HEADERS.values()
        )
        + r" \\",
        r"\midrule",
        *(" & ".join(cells) + r" \\" for cells in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    all_notes = marks + [_tex_escape(n) for n in notes]
    if all_notes:
        notes_text = r" \\ ".join(all_notes)
        lines.append(r"\par\smallskip{\scriptsize\raggedright " + notes_text + r"\par}")
    lines.append(r"\end{table*}")
    return "\n".join(lines) + "\n"
