"""Line numbers for every key of a YAML document, from PyYAML's node tree.

``yaml.safe_load`` forgets where things were; ``yaml.compose`` keeps a start mark on every
node. We walk that tree once and remember the line of each key path, so a problem found
later by the settings model can point at its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

Path_ = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    path: Path_
    line: int
    first_line: int


@dataclass(slots=True)
class YamlMarks:
    lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[DuplicateKey] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path``, or of its nearest ancestor present in the file (a missing
        key is reported at its parent's line)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def compose_marks(text: str) -> YamlMarks:
    """Marks of the first document in ``text``; raises :class:`yaml.YAMLError`."""
    marks = YamlMarks()
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        _walk(root, (), marks, set())
    return marks


def _walk(node: yaml.Node, path: Path_, marks: YamlMarks, active: set[int]) -> None:
    if id(node) in active:  # a recursive alias
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if key == "<<":  # merge key: its keys are not written here
                continue
            line = key_node.start_mark.line + 1
            sub = (*path, key)
            if key in seen:
                marks.duplicates.append(DuplicateKey(sub, line, seen[key]))
            else:
                seen[key] = line
                marks.lines[sub] = line
            _walk(value_node, sub, marks, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, str(i))
            marks.lines.setdefault(sub, item.start_mark.line + 1)
            _walk(item, sub, marks, active)
    active.discard(id(node))
