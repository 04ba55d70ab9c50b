"""The regenerated tables as text: GitHub Markdown with every detail, and a LaTeX table that
prints in a standard one-column article with booktabs alone: short unbroken cells (numbers,
``yes``/``open``/``no`` with the look), comparison signs in math mode, every special character
escaped, and a few lines of notes that point to the Markdown for the rest."""

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
    "vs_original": "At paper k vs our original: gain, p, 95% CI",
    "vs_k1": "At paper k vs our k=1: gain, p, 95% CI",
    "verdict": "Claim: paper k beats both (IUT, in looks, Holm over the claims)",
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


_TEX = str.maketrans(
    {
        "\\": r"$\backslash$",  # the OT1 fonts alone: no textcomp glyph
        "{": r"\{",
        "}": r"\}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "^": r"\^{}",
        "~": r"\~{}",
        "<": r"$<$",  # a bare < or > prints as another glyph in OT1 text: math mode
        ">": r"$>$",
        "≥": r"$\geq$",
        "≤": r"$\leq$",
        "±": r"$\pm$",
        "×": r"$\times$",
        "−": r"$-$",
        "–": "--",
        "—": "---",
    }
)


def _tex_escape(s: str) -> str:
    """``s`` as LaTeX text: every special character escaped, signs in math mode; a ``>=``
    becomes one ``$\\geq$``."""
    return s.replace(">=", "≥").replace("<=", "≤").translate(_TEX)


TEX_HEADERS = {  # column: (top line, bottom line, alignment)
    "model": ("", "Model", "l"),
    "params": ("Params", "(M)", "r"),
    "paper_original": ("Paper", "orig.", "r"),
    "ours_original": ("Ours", "orig.", "r"),
    "paper_kdecay": ("Paper", "k-decay", "r"),
    "ours_at_paper_k": ("Ours at", "paper k", "r"),
    "ours_k1": ("Ours", "k=1", "r"),
    "vs_original": ("p vs", "orig.", "c"),
    "vs_k1": ("p vs", "k=1", "c"),
    "verdict": ("Claim", "(look)", "c"),
}
TEX_MODEL_NAMES = {  # the appendix's models as short, unbroken names ({} is the config)
    "ResNet (pre-activation)": "PreResNet-{}",
    "Wide ResNet": "WRN-{}",
    "Wide ResNet with SGDR": "WRN-{} SGDR",
    "DenseNet-BC (growth k=12)": "DenseNet-BC-{}",
}
TEX_MARKS = {"source": r"\dagger", "sgdr": r"\ddagger", "seeds": "*"}
"""The marks of a LaTeX cell, each explained once under the table (:func:`_tex_notes`)."""
_NUMBER = re.compile(r"^(-?[\d.]+)M?(?: ± ([\d.]+))?")  # "4.12 ± 0.08 (median ..)", "1.73M"
# an error with its k: "k=3: 4.00 (chosen ...)" (our best), "3.59 (k=1.5)" (the paper's)
_WITH_K = re.compile(r"^(?:k=([\d.]+): )?([\d.]+)(?: \(k=([\d.]+)\))?")
_LOOK = re.compile(r"look (\d+) of \d+")
_WELCH = re.compile(r"Welch p=([\d.]+)")
_NO_NUMBER = ("not run", "diverged", "corrupt", "missing")  # what a cell without a number says

Cell = tuple[list[str], set[str]]  # a LaTeX cell's lines (one or two) and its marks


def _tex_number(text: str) -> Cell:
    """A measured cell: the mean over ``$\\pm$`` the std (medians and seed counts stay in the
    Markdown), marked where seeds diverged or are missing; else why there is no number."""
    match = _NUMBER.match(text)
    if match is None:
        return [next((w for w in _NO_NUMBER if w in text), "--")], set()
    mean, std = match.groups()
    marks = {"seeds"} if "[" in text else set()
    if "(SGDR, k=1)" in text:
        marks.add("sgdr")
    return [mean] + ([rf"$\pm${std}"] if std else []), marks


def _p_text(p: str) -> str:
    return f"p={p}".replace("p=0.000", "p$<$0.001")


def _claim_words(text: str) -> list[str]:
    """A claim's verdict in two words: yes / open / no, and the look it stands at (or
    ``futile``)."""
    look = _LOOK.search(text)
    at = [f"look {look.group(1)}"] if look else []
    if text.startswith("yes"):
        return ["yes", *at]
    if text.startswith("not confirmed: futile"):
        return ["no", "futile"]
    if text.startswith("not confirmed yet"):
        return ["open", *at]
    return ["no", *at]


def _tex_verdict(text: str) -> Cell:
    """The claim: yes / open / no with its look; a component: its one-sided Welch p;
    ``n/a``, ``no test``, or ``same`` for the SGDR row's k = 1 (its original). The reasons,
    gains and intervals are in the Markdown."""
    if text.startswith(("yes", "not confirmed")):
        return _claim_words(text), set()
    welch = _WELCH.search(text)
    if welch is not None:  # the header says it is a p
        return [_p_text(welch.group(1)).removeprefix("p=").replace("p$<$", "$<$")], set()
    if text.startswith("same"):
        return ["same"], {"sgdr"}
    return (["no", "test"] if text.startswith("no test") else ["n/a"]), set()


def _tex_cell(col: str, text: str) -> Cell:
    """What the LaTeX cell of column ``col`` shows for the Markdown cell ``text``."""
    if col in ("vs_original", "vs_k1", "verdict"):
        return _tex_verdict(text)
    if col == "paper_original":
        number, _, source = text.partition(" [")
        return [_tex_escape(number)], {"source"} if source else set()
    if col in ("paper_kdecay", "ours_best"):  # an error and its k: "3.59 (k=1.5)", "k=3: 4.00"
        match = _WITH_K.match(text)
        if match is None:
            return ["--"], set()
        k_before, err, k_after = match.groups()
        return [err, f"k={k_before or k_after}"], set()
    return _tex_number(text)


def _tex_join(lines: list[str], align: str, pos: str = "t") -> str:
    """One line as is; two stacked in a nested tabular (no package needed) whose top (``t``)
    or bottom (``b``) line is on the row's baseline."""
    if len(lines) == 1:
        return lines[0]
    return rf"\begin{{tabular}}[{pos}]{{@{{}}{align}@{{}}}}" + r"\\".join(lines) + r"\end{tabular}"


def _tex_mark(*names: str) -> str:
    """The superscript of the marks ``names`` (:data:`TEX_MARKS`), in one math group and
    smashed: a mark never makes its row taller than the others."""
    return r"\smash{$^{" + "".join(TEX_MARKS[n] for n in names) + "}$}"


def _tex_rows(table: pd.DataFrame) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """The LaTeX rows of ``table`` and, per mark, (row name, Markdown cell) of each use."""
    rows, used = [], {}
    for _, r in table.iterrows():
        short = TEX_MODEL_NAMES.get(str(r["model"]))
        name = short.format(r["config"]) if short else f"{r['model']} {r['config']}"
        cells = [_tex_escape(name)]
        for col, (_, _, align) in list(TEX_HEADERS.items())[1:]:
            lines, marks = _tex_cell(col, str(r[col]))
            if marks:
                lines[0] += _tex_mark(*(m for m in TEX_MARKS if m in marks))
            cells.append(_tex_join(lines, align))
            for m in marks:
                used.setdefault(m, []).append((name, str(r[col])))
        rows.append((r"\addlinespace[2pt] " if rows else "") + " & ".join(cells) + r" \\")
    return rows, used


def _source(cell: str) -> str:
    """Where a paper's number not in the appendix is from: ``20.50 [model paper (WRN v1)]``
    -> ``WRN v1``; any other source as it is written."""
    source = cell.partition(" [")[2].removesuffix("]")
    inner = source.removeprefix("model paper (")
    return inner[:-1] if inner != source and inner.endswith(")") else source


def _tex_notes(used: dict[str, list[tuple[str, str]]], n_notes: int, alpha: float) -> list[str]:
    """A few lines under the table: how to read it, each mark used, where the details are."""
    notes = [
        r"Test error (\%): a mean over seeds above its std, an error above its k. p vs orig., "
        "p vs k=1: one-sided Welch p that our error at the paper's k is lower. Claim: the paper's "
        "k beats both (intersection-union test), in looks of more seeds with Holm over the "
        f"claims of both tables at family level {alpha:g}: yes (confirmed at that look), open "
        "(more seeds to come), no (futile, or not at the last look). Our best k (chosen on the "
        "test set): tables.md."
    ]
    if "source" in used:
        sources = "; ".join(  # a row's name never breaks over two lines
            f"{_tex_escape(name).replace(' ', '~')} ({_tex_escape(_source(cell))})"
            for name, cell in used["source"]
        )
        notes.append(
            f"{_tex_mark('source')}Not in the k-decay appendix; from the model's paper: {sources}."
        )
    if "sgdr" in used:
        notes.append(rf"{_tex_mark('sgdr')}The SGDR row's original recipe is its k=1 run.")
    if "seeds" in used:
        notes.append(rf"{_tex_mark('seeds')}Some seeds diverged, were corrupt or are missing.")
    plural = "s" if n_notes > 1 else ""
    paper = f" and {n_notes} note{plural} on the paper's numbers" if n_notes else ""
    notes.append(f"Medians, seed counts, our gains with their bounds{paper}: tables.md.")
    return notes


def to_latex(table: pd.DataFrame, title: str, notes: list[str], alpha: float = 0.05) -> str:
    """A full-width (``table*``) booktabs table in ``\\scriptsize`` (7 pt) with narrow column
    gaps, never scaled: it fits a one-column article's text width at a readable size. Cells
    hold numbers (the std under the mean) and short verdicts (``yes``, ``p=0.003``); a few
    lines of notes explain the marks and point to the Markdown table, which keeps every
    detail (``notes`` included). Needs only ``\\usepackage{booktabs}`` (the first line of the
    file says so); include it with ``\\input{cifar10.tex}``."""
    rows, used = _tex_rows(table)
    header = " & ".join(
        _tex_join([top, bottom], "c", "b") if top else bottom
        for top, bottom, _ in TEX_HEADERS.values()
    )
    lines = [
        r"% needs \usepackage{booktabs}; include with \input{<this file>}",
        r"\begin{table*}[t]",
        r"\centering",
        r"\scriptsize",
        r"\setlength{\tabcolsep}{2pt}",
        rf"\caption{{{_tex_escape(title)}}}",
        r"\begin{tabular}{@{}" + "".join(a for _, _, a in TEX_HEADERS.values()) + "@{}}",
        r"\toprule",
        header + r" \\",
        r"\midrule",
        *rows,
        r"\bottomrule",
        r"\end{tabular}",
        r"\par\smallskip",
        r"\parbox{\linewidth}{\raggedright "
        + r"\\ ".join(_tex_notes(used, len(notes), alpha))
        + "}",
        r"\end{table*}",
    ]
    return "\n".join(lines) + "\n"
