"""YAML documents that remember where every value came from, so a validation error can name the line.

Two jobs, both for user-written configuration (the policy file):

- parse with YAML 1.2 booleans: PyYAML follows YAML 1.1, where an unquoted ``on``, ``off``, ``yes`` or
  ``no`` is a boolean — the policy's ``on: upper_ci`` key would silently become ``True``. Only
  ``true``/``false`` are booleans here;
- keep dates as text (``2025-13-01`` would otherwise crash the YAML constructor before validation could
  name its line); the schema parses them;
- map a location such as ``("rules", 1, "fail")`` (what pydantic reports) back to the line of that value
  in the file, using the node tree PyYAML composes with start marks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true/false (YAML 1.2 core schema) and that leaves dates as text."""


_DROPPED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, ("tag:yaml.org,2002:bool", _BOOL))


class YamlSourceError(ValueError):
    """The text is not YAML, or not the shape expected; `line` is 1-based (None when unknown)."""

    def __init__(self, message: str, *, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class YamlSource:
    """A parsed YAML document plus its node tree, for line look-ups."""

    data: object
    root: yaml.Node | None

    def line_of(self, location: tuple[str | int, ...], *, key: bool = False) -> int | None:
        """1-based line of the value at `location`, or of its key when `key` (for unknown keys).

        A location that does not exist in the file (a missing field) gives the line of the deepest
        enclosing value that does.
        """
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for index, part in enumerate(location):
            child = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                        last = index == len(location) - 1
                        child = key_node if (key and last) else value_node
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                child = node.value[part]
            if child is None:
                return line
            node = child
            line = node.start_mark.line + 1
        return line


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...] = ()) -> list[tuple[str, int]]:
    """(dotted path, line) of every key given twice in one mapping (PyYAML would keep the last silently)."""
    found: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            if name in seen:
                found.append((format_location((*path, name)), key_node.start_mark.line + 1))
            seen.add(name)
            found.extend(_duplicate_keys(value_node, (*path, name)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, (*path, index)))
    return found


def format_location(location: tuple[str | int, ...]) -> str:
    """("rules", 1, "fail") → "rules[1].fail"."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_yaml(*, text: str) -> YamlSource:
    """Parse one YAML document with YAML 1.2 booleans; refuse syntax errors and duplicate keys with a line."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 — _Loader is a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "not valid YAML"
        raise YamlSourceError(f"not valid YAML: {problem}", line=mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, ValueError, TypeError) as error:
        raise YamlSourceError(f"not valid YAML: {error}", line=None) from None
    if root is not None:
        duplicates = _duplicate_keys(root)
        if duplicates:
            where, line = duplicates[0]
            raise YamlSourceError(f"{where}: given twice (the second would silently win)", line=line)
    return YamlSource(data=data, root=root)


__all__ = ["YamlSource", "YamlSourceError", "format_location", "parse_yaml"]
