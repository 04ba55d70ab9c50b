"""Edit a params file in place the way a person would: ruamel.yaml's round trip keeps every
comment, the key order and the flow style of the untouched parts (``kdecay smoke`` filling in
its archives' URLs). Read the file with :func:`kdecay.config.yaml_io.read_yaml_mapping` first:
that reader is the one that bounds and validates it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

__all__ = ["edit_yaml_file", "edit_yaml_text", "flow_leaves"]


def flow_leaves(value: Any) -> Any:
    """``value`` with every list, and every mapping holding no mapping, in flow style
    (``{dataset: cifar10, seed: 1}``, ``[0, 1, 2]``): one line per run in ``claim_runs``."""
    if isinstance(value, dict):
        node = CommentedMap((k, flow_leaves(v)) for k, v in value.items())
        if not any(isinstance(v, dict) for v in value.values()):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list | tuple):
        seq = CommentedSeq(flow_leaves(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def edit_yaml_text(text: str, values: dict[tuple[str, ...], Any]) -> str:
    """``text`` with each key path of ``values`` set (``("data", "cifar10", "md5"): "..."``;
    an int indexes a list: ``("claims", "cells", 2, "seeds")``); missing mappings on a path
    are created, everything else is kept as written."""
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # one line per flow mapping (a run of claim_runs), as written
    yaml.indent(mapping=2, sequence=4, offset=2)  # the style of params.yaml
    doc = yaml.load(text)
    for path, value in values.items():
        node = doc
        for key in path[:-1]:
            if not isinstance(key, int) and node.get(key) is None:
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def edit_yaml_file(source: Path, target: Path, values: dict[tuple[str, ...], Any]) -> None:
    """Write ``source`` with ``values`` set to ``target`` (which may be ``source``)."""
    target.write_text(edit_yaml_text(Path(source).read_text(), values))
