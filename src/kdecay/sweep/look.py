"""``kdecay look``: where each claim stands after the finished runs, and (``--apply``) the
seeds its next look needs, written into params.yaml.

The states come from :func:`kdecay.report.looks.replay_looks` (the tables print the same).
``--apply`` extends ``claims.cells[i].seeds`` of every claim that continues to its next look's
seed count (the next unused seeds: 0, 1, 2 -> 0, ..., 5) and rewrites ``claim_runs`` (the runs
DVC trains for the claims) to match, keeping every comment of the file; decided claims get no
seed more. Exit status: 0 when nothing is left to train (every claim decided, or at its last
look), :data:`MORE` when seeds were added (``make repro`` trains them and looks again), 1
when a claim's runs of its current look are missing (train them first), 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path

from kdecay.config import Config, load_config
from kdecay.config.yaml_edit import edit_yaml_file, flow_leaves
from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.data.datasets import DATASETS
from kdecay.report.claims import LineCells, line_cells
from kdecay.report.looks import replay_looks
from kdecay.report.summary import read_summary
from kdecay.report.tables import load_appendix

__all__ = ["MORE", "look", "next_seeds", "render_looks"]

MORE = 3
"""Exit status of ``kdecay look --apply`` when it added seeds."""


def claim_lines(config: Config, summary: Path, appendix: Path) -> list[LineCells]:
    """The printed lines of the appendix with their looks replayed from ``summary``."""
    runs, cells = read_summary(summary, config)
    app = load_appendix(appendix)
    lines = [
        line_cells(a, dataset, cells, runs, config)
        for dataset in config.datasets
        for _, a in app[(app["dataset"] == dataset) & app["row"].isin(list(config.rows))].iterrows()
    ]
    replay_looks(lines, runs, config.stats.alpha, config.stats.looks)
    return [line for line in lines if line.printed]


def next_seeds(seeds: tuple[int, ...], n: int) -> tuple[int, ...]:
    """``seeds`` extended to ``n`` with the smallest seeds not in it yet."""
    out, candidate = list(seeds), 0
    while len(out) < n:
        if candidate not in out:
            out.append(candidate)
        candidate += 1
    return tuple(out)


def _state(line: LineCells, claimed: bool) -> str:
    look = line.look
    assert look is not None
    if not claimed:
        return "not in claims.cells: no seeds planned"
    if look.decided:
        return {"yes": "decided: yes", "futile": "stopped: futility", "no": "decided: no"}[
            look.state
        ]
    if look.index < 0:
        return "waiting for runs"
    return "continues"


def render_looks(lines: list[LineCells], config: Config) -> str:
    """One Markdown line per claim: look reached, seeds per arm, IUT p, state, next seeds."""
    out = [
        "| claim | paper k | look | seeds per arm (finished) | IUT p | state | next look |",
        "|---|--:|---|--:|--:|---|---|",
    ]
    cells = {(c.dataset, c.row) for c in config.claims.cells}
    for line in lines:
        look = line.look
        assert look is not None
        claimed = (line.dataset, line.row) in cells
        where = "none yet" if look.index < 0 else f"{look.index + 1} of {len(look.looks)}"
        p = "" if look.index < 0 else f"{look.p:.4f}"
        needs = "" if look.decided or look.needs is None else f"{look.needs} seeds per arm"
        needs = needs if claimed else ""
        out.append(
            f"| {DATASETS[line.dataset].title} {line.row} | {line.paper_k:g} | {where} "
            f"| {look.n} ({look.finished}) | {p} | {_state(line, claimed)} | {needs} |"
        )
    return "\n".join(out) + "\n"


def _plan(config: Config, lines: list[LineCells]) -> tuple[dict[int, tuple[int, ...]], list[str]]:
    """Per ``claims.cells`` index the seeds the next look needs, and the claims waiting."""
    index = {(c.dataset, c.row): i for i, c in enumerate(config.claims.cells)}
    grow, waiting = {}, []
    for line in lines:
        look, i = line.look, index.get((line.dataset, line.row))
        assert look is not None
        if i is None or look.decided:
            continue
        first = look.looks[0] if look.index < 0 else None
        if first is not None and look.finished < first:
            if len(line.seeds) < first:  # fewer seeds than the first look takes
                grow[i] = next_seeds(line.seeds, first)
            else:
                waiting.append(f"{line.dataset}/{line.row}")
        elif look.needs is not None and len(line.seeds) < look.needs:
            grow[i] = next_seeds(line.seeds, look.needs)
        elif look.needs is not None:  # its seeds are listed, their runs not all finished
            waiting.append(f"{line.dataset}/{line.row}")
    return grow, waiting


def apply_seeds(params: Path, grow: dict[int, tuple[int, ...]]) -> Config:
    """Write each grown cell's seeds and the matching ``claim_runs`` into ``params``."""
    raw = read_yaml_mapping(params)
    for i, seeds in grow.items():
        raw["claims"]["cells"][i]["seeds"] = list(seeds)
    config = Config.from_mapping(raw, check_claim_runs=False)
    values: dict[tuple, object] = {
        ("claims", "cells", i, "seeds"): flow_leaves(list(s)) for i, s in grow.items()
    }
    values[("claim_runs",)] = flow_leaves(config.claim_runs_mapping())
    edit_yaml_file(params, params, values)
    return load_config(params)


def look(params: Path, summary: Path, appendix: Path, apply: bool) -> int:
    """``kdecay look [--apply]``: print the claims' states; with ``apply`` write the next
    look's seeds. Returns the exit status (module docstring)."""
    raw = read_yaml_mapping(params)
    config = Config.from_mapping(raw, check_claim_runs=not apply)
    lines = claim_lines(config, summary, appendix) if summary.is_file() else []
    if not summary.is_file():
        print(f"{summary} not found: no finished runs yet (dvc repro trains the first look)")
    else:
        print(render_looks(lines, config), end="")
    grow, waiting = _plan(config, lines)
    if waiting:
        print(f"waiting for the runs of the current look: {', '.join(waiting)} (dvc repro)")
    if not apply:
        return 1 if waiting else 0
    fresh = apply_seeds(params, grow)
    added = len(fresh.runs()) - len(config.runs())
    if grow:
        names = ", ".join(
            f"{fresh.claims.cells[i].dataset}/{fresh.claims.cells[i].row} -> "
            f"{len(fresh.claims.cells[i].seeds)} seeds"
            for i in sorted(grow)
        )
        print(f"{params}: next look written ({names}): {added} runs to train")
        return MORE
    print(f"{params}: claim_runs written; no claim needs more seeds")
    return 1 if waiting else 0
