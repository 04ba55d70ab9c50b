"""The one typed configuration: every key checked once when params load, one list of runs
that dvc.yaml renders exactly, bounded YAML, and every report stage declaring in dvc.yaml the
params its code reads."""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdecay.config import Config, ConfigError, load_config
from kdecay.config.yaml_io import read_yaml_mapping
from tiny_runs import keep_rows, sync_claim_runs

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def _raw() -> dict[str, Any]:
    return yaml.safe_load(PARAMS.read_text())


def _write(tmp_path: Path, params: dict[str, Any], sync: bool = True) -> Path:
    """``params`` as a file; ``sync``: with ``claim_runs`` matching its claims, as
    ``kdecay look --apply`` would write it (where the rest of params is valid)."""
    if sync:
        # a params file broken on purpose is written as it is: the test is about that
        with contextlib.suppress(ConfigError, TypeError, KeyError, AttributeError):
            sync_claim_runs(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["rows"]["wrn16_8"].update(paddng="reflect"), "rows.wrn16_8.paddng"),
        (
            lambda p: p["rows"]["preact_resnet110"]["original"].update(warmup_iter=2),
            "rows.preact_resnet110.original.warmup_iter",
        ),
        (lambda p: p["rows"]["wrn16_8"].update(epochz=3), "rows.wrn16_8.epochz"),
        (lambda p: p.update(kdecay_typo={"ks": [1]}), "unknown key kdecay_typo"),
        (lambda p: p["kdecay"].update(kss=[1]), "unknown key kdecay.kss"),
        (lambda p: p["rows"]["wrn16_8"]["optimizer"].update(nestrov=True), "optimizer.nestrov"),
        (lambda p: p["data"]["cifar10"].update(md6="x"), "unknown key data.cifar10.md6"),
        (lambda p: p["sweep"].update(gpu_fractions={}), "unknown key sweep.gpu_fractions"),
        (lambda p: p["sweep"]["seconds_per_epoch"].update(wrn99=1), "seconds_per_epoch.wrn99"),
        (lambda p: p.update(smoke={"train_image": 5}), "unknown key smoke.train_image"),
    ],
    ids=[
        "row",
        "schedule",
        "epochz",
        "section",
        "kdecay",
        "optimizer",
        "data",
        "sweep",
        "sweep-row",
        "smoke",
    ],
)
def test_every_unknown_key_is_named_with_its_path(edit: Any, message: str, tmp_path: Path) -> None:
    params = _raw()
    edit(params)
    with pytest.raises(ConfigError, match="unknown key") as err:
        load_config(_write(tmp_path, params))
    assert message in str(err.value) and "allowed" in str(err.value)


@pytest.mark.parametrize(
    ("ks", "message"),
    [
        ([3.0], "write 3.0 as 3"),
        ([1, 1.0, 3], "kdecay.ks repeats 1.0"),
        ([0.1, 0.1000001], "write 0.1000001 as 0.1"),
        ([1, 1.5, 2, 1, 5], "kdecay.ks repeats 1"),
        ([0], "kdecay.ks: each k must be a number > 0"),
    ],
)
def test_k_values_that_would_lose_or_repeat_runs_are_refused(
    ks: list[float], message: str, tmp_path: Path
) -> None:
    params = _raw()
    params["kdecay"]["ks"] = ks
    with pytest.raises(ConfigError, match=r"kdecay\.ks") as err:
        load_config(_write(tmp_path, params))
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("seeds", "message"),
    [([0, 0], "seeds repeats 0"), ([-1], "seeds: each seed"), ([1.5], "seeds: each seed"),
     ([True], "seeds: each seed"), (0, "seeds must be a non-empty YAML list")],
)  # fmt: skip
def test_bad_seeds_are_refused(seeds: Any, message: str, tmp_path: Path) -> None:
    params = _raw()
    params["seeds"] = seeds
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, params))
    assert message in str(err.value)


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    """12 levels of 10 aliases stand for 10^12 values: walking them would never end, so
    refusing at all proves the bound (the count is linear in the file's distinct nodes)."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS.read_text() + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(path)
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="refers to itself"):
        load_config(path)


def test_the_real_params_use_anchors_and_load() -> None:
    assert "<<: *wrn" in PARAMS.read_text()
    config = load_config(PARAMS)
    assert config.rows["wrn28_10"].optimizer == config.rows["wrn16_8"].optimizer
    assert config.rows["wrn28_10_sgdr"].optimizer.lr == 0.05


def test_the_list_of_runs_is_the_one_dvc_yaml_renders() -> None:
    """Stage names and output folders of every training stage, as DVC renders dvc.yaml with
    params.yaml, equal :meth:`Config.runs` (the SGDR row has no original stage)."""
    from kdecay.sweep.preflight import _rendered_training_stages

    config = load_config(PARAMS)
    rendered = _rendered_training_stages(ROOT)
    runs = config.runs()
    assert {r.stage: {str(r.out_dir())} for r in runs} == rendered
    assert sum(r.group == "sweep" for r in runs) == 82  # the sweep of one seed
    assert not any(r.row == "wrn28_10_sgdr" and r.method == "original" for r in runs)
    # the first look's claim runs: seeds 1 and 2 (seed 0 is the sweep's) of the 8 claims'
    # originals (not the SGDR row's: its original is its k = 1) and of the 9 claims' k = 1 and
    # paper's k; no extra seed for an original without a printed claim (CIFAR-100 WRN-28-10)
    assert len(runs) == 82 + (8 + 9 + 9) * 2
    stages = {r.stage for r in runs}
    assert "train_claim_kdecay@cifar100-preact_resnet164-k3.5-seed2" in stages
    assert "train_claim_original@cifar10-wrn16_8-seed1" in stages
    assert not any(s.startswith("train_claim_original@cifar100-wrn28_10-") for s in stages)


def test_a_claim_runs_list_that_differs_from_the_claims_is_refused(tmp_path: Path) -> None:
    """Seeds added to a claim by hand (or a stale claim_runs) stop kdecay check with the
    command that rewrites the list, never a DVC stage list other than the claims'."""
    params = _raw()
    params["claims"]["cells"][0]["seeds"] = [0, 1, 2, 3]
    path = _write(tmp_path, params, sync=False)
    with pytest.raises(ConfigError, match=r"claim_runs does not list .*kdecay look --apply"):
        load_config(path)
    assert len(load_config(_write(tmp_path, params)).runs()) == 134 + 3


def test_check_names_a_row_list_that_drifted_from_params(tmp_path: Path) -> None:
    from kdecay.sweep.preflight import check_dvc_stages

    params = keep_rows(_raw(), ["preact_resnet110", "wrn16_8", "wrn28_10_sgdr"])
    config = Config.from_mapping(params)
    with pytest.raises(ConfigError, match=r"dvc\.yaml's training stages and params disagree"):
        check_dvc_stages(config, ROOT)


class Recorder:
    """A view of a Config that records the params keys read through it (``kdecay.ks``,
    ``rows``): methods and properties of the config run against the recorder, so what they
    read is recorded too."""

    SECTIONS = ("kdecay", "train", "smoke", "data", "sweep", "claims", "stats")

    def __init__(self, obj: Any, prefix: str, reads: set[str]) -> None:
        self._obj, self._prefix, self._reads = obj, prefix, reads

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """``dataclasses.asdict`` of an object holding this view (a run's config hash) copies
        it whole: every key of the section is read, and asdict would have given its dict."""
        self._reads.add(self._prefix.rstrip("."))
        if dataclasses.is_dataclass(self._obj):
            return dataclasses.asdict(self._obj)
        return copy.deepcopy(self._obj, memo)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle protocol lookups: not params
            raise AttributeError(name)
        attr = getattr(type(self._obj), name, None)
        if callable(attr):
            return attr.__get__(self)
        if isinstance(attr, property):
            return attr.fget(self)
        key = f"{self._prefix}{name}"
        value = getattr(self._obj, name)
        if not self._prefix and name in self.SECTIONS:
            return Recorder(value, f"{name}.", self._reads)
        self._reads.add(key)
        return value


def _declared(stage: str) -> set[str]:
    return set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["params"])


def _covered(read: str, declared: set[str]) -> bool:
    return any(read == d or read.startswith(d + ".") for d in declared)


@pytest.fixture
def report_workspace(tmp_path: Path) -> tuple[Config, Path]:
    from kdecay.config import run_folder
    from kdecay.fileio import write_json
    from kdecay.report.aggregate import aggregate

    params = _raw()
    params["data"]["cifar10"]["md5"] = "0" * 32
    path = _write(tmp_path, params)
    config = load_config(path)
    for method, error in (("k1", 6.0), ("k2", 5.5)):  # two k with a result: a best k to pick
        folder = run_folder(tmp_path / "runs", "cifar10", "preact_resnet110", method, 0)
        k = float(method[1:])
        spec = config.run_spec("cifar10", "preact_resnet110", "kdecay", k, 0)
        done = {"epochs": spec.epochs, "config_hash": spec.config_hash()}
        write_json(folder / "run.json", done)
        write_json(folder / "metrics.json", {"status": "completed", "final_test_error": error,
                                             "best_test_error": error, "best_epoch": spec.epochs,
                                             "epochs_completed": spec.epochs, **done})  # fmt: skip
    aggregate(tmp_path / "runs", tmp_path / "summary.csv", path)
    return load_config(path), tmp_path


@pytest.mark.parametrize("stage", ["aggregate", "tables", "figures"])
def test_each_report_stage_declares_exactly_the_params_it_reads(
    stage: str, report_workspace: tuple[Config, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    config, ws = report_workspace
    reads: set[str] = set()
    module = importlib.import_module(f"kdecay.report.{stage}")
    monkeypatch.setattr(module, "load_config", lambda _path: Recorder(config, "", reads))
    appendix = ROOT / "paper" / "appendix_tables.csv"
    if stage == "aggregate":
        module.aggregate(ws / "runs", ws / "summary2.csv", ws / "params.yaml", ws / "plots")
    elif stage == "tables":
        module.write_tables(ws / "summary.csv", appendix, ws / "t", params_file=ws / "params.yaml")
    else:
        module.write_figures(
            ws / "summary.csv", ws / "runs", appendix, ws / "f", params_file=ws / "params.yaml"
        )
    declared = _declared(stage)
    assert {r for r in reads if not _covered(r, declared)} == set(), "read, not declared"
    assert {d for d in declared if not any(_covered(r, {d}) for r in reads)} == set(), (
        "declared, never read"
    )


def test_no_import_cycle_in_the_package() -> None:
    """Walk every module's ``kdecay`` imports (module level and inside functions)."""
    src = ROOT / "src" / "kdecay"
    modules = {
        ".".join(p.relative_to(src.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in src.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    # a package's __init__ importing its own submodules is how it re-exports them
    for name in graph:
        graph[name] = {d for d in graph[name] if not d.startswith(name + ".")}

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    return [*path, dep]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
        return None

    cycles = [c for c in map(cycle_from, graph) if c]
    assert cycles == [], cycles[:3]


def test_typed_sections_replace_the_raw_mapping() -> None:
    """No module outside kdecay.config reads the raw params mapping."""
    offenders = []
    for path in (ROOT / "src" / "kdecay").rglob("*.py"):
        if "config" in path.parts:
            continue
        text = path.read_text()
        for needle in ('params["', "params.get(", "load_params", "resolve_run("):
            if needle in text:
                offenders.append(f"{path.name}: {needle}")
    assert offenders == []


def test_a_config_is_frozen_and_reads_defaults() -> None:
    config = load_config(PARAMS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seeds = (1,)  # type: ignore[misc]
    assert read_yaml_mapping(PARAMS)["kdecay"]["ks"] == list(config.kdecay.ks)
    assert config.train.save_weights is True  # what dvc.yaml's model.pt outputs need


def test_binary_and_duplicate_keys_are_one_line_errors(tmp_path: Path) -> None:
    """A binary file and a key written twice (which YAML would take silently, last wins) are
    refused by kdecay itself, in one line naming the file (and the lines)."""
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "not a YAML text file" in str(err.value) and "\n" not in str(err.value)
    path.write_text(PARAMS.read_text() + "\nseeds: [5]\n")
    with pytest.raises(ConfigError, match=r"key 'seeds' appears twice in one mapping \(lines"):
        load_config(path)


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("seeds",), [2**64], "seeds: each seed must be an integer >= 0 and <="),
        (("claims", "cells", 0, "seeds"), [0, 2**63], "claims.cells[0].seeds: each seed"),
        (("sweep", "cpus_per_run"), 0, "sweep.cpus_per_run"),
        (("rows", "wrn16_8", "optimizer", "lr"), 1e30, "rows.wrn16_8.optimizer.lr"),
        (("rows", "preact_resnet110", "original", "warmup_lr"), 1e6, "warmup_lr"),
    ],
    ids=["seed-past-torch", "claim-seed-past-torch", "no-cpus", "lr-1e30", "warmup-lr-1e6"],
)
def test_values_train_would_refuse_or_waste_are_refused_first(
    where: tuple[str, ...], value: Any, message: str, tmp_path: Path
) -> None:
    """Seeds torch cannot take, Ray tasks with no CPU, and learning rates no recipe uses are
    refused by the config `kdecay check` and `kdecay train` both read, before any work."""
    params = _raw()
    node = params
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_write(tmp_path, params))
