"""The numbers README.md and docs/ state about the plan cannot go stale: the plan table in the
README is `kdecay plan`'s own output, and every count of runs, epochs or optimizer steps and
every GPU-hour figure written in prose is one that `kdecay plan` prints for params.yaml or for
params.smoke.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdecay.sweep.plan import print_plan

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BEGIN, END = "<!-- kdecay plan: begin -->", "<!-- kdecay plan: end -->"
# a count or figure with its unit; small counts ("3 epochs", "11 runs") describe tests and
# examples, not the plan, and are left out by the thresholds below
STATED = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(GPU-hours|GPU-h\b|runs\b|epochs\b|optimizer steps)")
SMALLEST = {"runs": 50, "epochs": 1000, "optimizer steps": 10_000}


def plan_output(params: Path, capsys: pytest.CaptureFixture[str]) -> str:
    print_plan(params, appendix=ROOT / "paper" / "appendix_tables.csv")
    return capsys.readouterr().out


def numbers(text: str) -> set[float]:
    return {float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def test_the_readme_plan_table_is_kdecay_plans_output(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1, "the plan block is missing"
    block = readme.split(BEGIN)[1].split(END)[0].strip().strip("`").strip()
    table = plan_output(ROOT / "params.yaml", capsys).split("\n\n")[0].strip()
    assert block == table, "README's plan table is stale: paste `make plan`'s first table"


def test_every_plan_number_in_the_docs_is_one_kdecay_plan_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed = numbers(plan_output(ROOT / "params.yaml", capsys))
    printed |= numbers(plan_output(ROOT / "params.smoke.yaml", capsys))
    stale = []
    for doc in DOCS:
        for match in STATED.finditer(doc.read_text()):
            value, unit = float(match[1].replace(",", "")), match[2]
            small = value < SMALLEST.get(unit, 0)
            if not small and value not in printed:
                stale.append(f"{doc.name}: {match[0]!r}")
    assert stale == [], f"numbers no `kdecay plan` prints (stale?): {stale}"


def test_the_check_finds_a_stale_number(capsys: pytest.CaptureFixture[str]) -> None:
    """The pattern catches the kinds of statement that went stale before."""
    printed = numbers(plan_output(ROOT / "params.yaml", capsys))
    for stale in ("16,192 epochs", "7,973,272 optimizer steps", "56.7 GPU-hours"):
        match = STATED.search(stale)
        assert match and float(match[1].replace(",", "")) not in printed, stale


GPU_REPORT = ROOT / "docs" / "gpu" / "proof-h200.json"


def _gpu_figures() -> set[str]:
    """The figures of the committed H200 proof report, formatted as the README states them."""
    import json

    report = json.loads(GPU_REPORT.read_text())
    steps = report["steps"]
    models = {m["name"]: m for m in steps["bench"]["result"]["models"]}
    figures = {
        f"{m[col]['seconds_per_epoch']:.2f}"
        for m in models.values()
        for col in ("ours_compiled", "ours_eager", "standard_amp")
        if m.get(col)
    }
    env = steps["environment"]["result"]
    figures |= {".".join(env["torch"].split(".")[:2]), env["cuda"]}
    figures.add(f"{models['densenet_bc100_k12']['deadline_seconds']:.0f} s")
    figures.add(
        f"{report['elapsed_seconds']:.0f} s in {len(report['calls'])} call".replace(" 1 ", " one ")
    )
    figures.add(f"{steps['epoch']['result']['wall_seconds']:.1f}")
    for row in steps["fused"]["result"].values():
        for group in row["groups"].values() if isinstance(row, dict) else []:
            figures.add(f"{group['speedup_vs_alone_eager']:.2f}x")
    return figures


def test_the_readme_gpu_figures_are_the_committed_proof_reports() -> None:
    """Every figure the README's GPU section states with decimals (seconds per epoch, the
    epoch's seconds, fused speed-ups) is one of docs/gpu/proof-h200.json, and back."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The GPU proof")[1].split("\n## ")[0]
    stated = set(re.findall(r"\b\d+\.\d+x?", section))
    figures = _gpu_figures()
    assert stated - figures == set(), "README states GPU figures the proof report lacks"
    decimals = {f for f in figures if re.fullmatch(r"\d+\.\d+x?", f)}
    assert decimals - stated == set(), "the proof report has figures the README leaves out"
    assert all(f in section for f in figures - decimals)
