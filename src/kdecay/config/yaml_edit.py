"""Edit a params file in place the way a person would: ruamel.yaml's round trip keeps every
comment, the key order and the flow style of the untouched parts (``kdecay smoke`` filling in
its archives' URLs). Read the file with :func:`kdecay.config.yaml_io.read_yaml_mapping` first:
that reader is the one that bounds and validates it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

__all__ = ["edit_yaml_text"]


def edit_yaml_text(text: str, values: dict[tuple[str, ...], Any]) -> str:
    """``text`` with each key path of ``values`` set (``("data", "cifar10", "md5"): "..."``);
    missing mappings on a path are created, everything else is kept as written."""
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)  # the style of params.yaml
    doc = yaml.load(text)
    for path, value in values.items():
        node = doc
        for key in path[:-1]:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def edit_yaml_file(source: Path, target: Path, values: dict[tuple[str, ...], Any]) -> None:
    """Write ``source`` with ``values`` set to ``target`` (which may be ``source``)."""
    target.write_text(edit_yaml_text(Path(source).read_text(), values))
