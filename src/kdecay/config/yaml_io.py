"""Reading a params file with bounded cost.

YAML aliases let a few hundred bytes stand for billions of nodes (a "billion laughs" bomb): the
composed node graph is small, but everything that walks the loaded object (validation, DVC's
own parser) pays for every expansion. :func:`read_yaml_mapping` composes the document, counts
the nodes it stands for with every alias expanded (linear time: each distinct node is counted
once and its count reused), and refuses a file over :data:`MAX_NODES` (or a recursive alias)
before constructing any Python object. Real params files use a few anchors for shared recipes
(``<<: *wrn``) and stay far below the bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kdecay.checks import ConfigError

__all__ = ["MAX_BYTES", "MAX_NODES", "read_yaml_mapping"]

MAX_BYTES = 1 << 20  # params.yaml is about 7 KB
MAX_NODES = 100_000  # params.yaml expands to about 1,000 nodes


def _expanded_nodes(root: yaml.Node, path: Path) -> int:
    """Nodes of ``root`` with every alias expanded; raises past :data:`MAX_NODES`."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"params file {path}: a YAML alias refers to itself; remove it")
        active.add(key)
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(node, path)
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        active.discard(key)
        if total > MAX_NODES:
            raise ConfigError(
                f"params file {path}: its YAML aliases expand to more than {MAX_NODES:,} "
                "values (an alias bomb, or not a params file); write the values out instead"
            )
        sizes[key] = total
        return total

    return size(root)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _refuse_duplicate_keys(node: yaml.MappingNode, path: Path) -> None:
    """A key written twice in one mapping: YAML loaders keep the last one silently (and DVC
    refuses the file later), so a typo'd second ``seeds:`` would change the runs unseen."""
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            line = key.start_mark.line + 1
            if key.value in seen:
                raise ConfigError(
                    f"params file {path}: key {key.value!r} appears twice in one mapping "
                    f"(lines {seen[key.value]} and {line}); keep one"
                )
            seen[key.value] = line


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path``; every failure is a :class:`ConfigError` naming
    the file: missing, too large, binary, not YAML, a key written twice, an alias bomb, or not
    a mapping."""
    if not path.is_file():
        raise ConfigError(f"params file {path} not found: pass --params FILE or run from the repo")
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(
            f"params file {path} is {path.stat().st_size:,} bytes, over {MAX_BYTES:,}: "
            "not a params file"
        )
    try:  # the reader refuses control characters (a binary file) as it is made
        loader = yaml.SafeLoader(path.read_text(errors="replace"))
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not a YAML text file: {_one_line(err)}") from err
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"params file {path} is empty: it must hold a mapping")
        _expanded_nodes(node, path)
        params = loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not valid YAML: {_one_line(err)}") from err
    except RecursionError as err:
        raise ConfigError(f"params file {path} is nested too deeply to be a params file") from err
    finally:
        loader.dispose()
    if not isinstance(params, dict):
        raise ConfigError(f"params file {path} must hold a mapping at the top level")
    return params
