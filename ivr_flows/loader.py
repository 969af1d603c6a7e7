"""Read a flow or prompt file as YAML that cannot hurt the process, keeping every key's line.

Flow files are edited by people and reloaded into a running server, so the reader refuses
before it builds anything large: a file over :data:`MAX_BYTES`, nesting deeper than
:data:`MAX_DEPTH`, more than :data:`MAX_NODES` values, and any anchor or alias (``&a``/``*a``:
the "billion laughs" bomb needs them, and a flow has no use for them). The limits are checked
on PyYAML's event stream, which is flat, so even ``[[[[…`` ten thousand deep costs no recursion.
Duplicate keys, which PyYAML would silently resolve to the last one, are refused too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivr_flows.errors import FlowError, Problem

MAX_BYTES = 512 * 1024
MAX_DEPTH = 12
MAX_NODES = 50_000

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Parser: Any = getattr(yaml, "CParser", None)

Path_ = tuple[str, ...]


@dataclass(slots=True)
class Document:
    """Parsed data plus the line of every key and list item (path parts as text)."""

    name: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, *path: object) -> int:
        """Line of the deepest part of ``path`` present in the file (missing key → parent)."""
        parts = tuple(str(p) for p in path)
        for end in range(len(parts), -1, -1):
            found = self.lines.get(parts[:end])
            if found is not None:
                return found
        return 1

    def problem(self, path: Path_ | tuple[object, ...], message: str) -> Problem:
        parts = tuple(str(p) for p in path)
        node = printable(parts[1]) if len(parts) > 1 and parts[0] == "nodes" else None
        return Problem(self.name, self.line(*parts), message, node)


def printable(text: str, limit: int = 64) -> str:
    """Text from the file as it may be shown: control characters escaped, length bounded."""
    out = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit])
    return out + ("…" if len(text) > limit else "")


def read_text(path: Path) -> str:
    """The file's text, refusing what is too big to be a flow or not UTF-8."""
    name = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise FlowError(
            [Problem(name, 1, f"cannot read the file: {exc.strerror or exc}")]
        ) from None
    if len(raw) > MAX_BYTES:
        message = f"file larger than {MAX_BYTES // 1024} KB: refused (a flow is a few KB)"
        raise FlowError([Problem(name, 1, message)])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FlowError([Problem(name, line, "not UTF-8 text")]) from None


def parse(text: str, name: str) -> Document:
    """YAML text → :class:`Document`, or :class:`FlowError` with the line of the first problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise FlowError([Problem(name, 1, f"file larger than {MAX_BYTES // 1024} KB: refused")])
    try:
        _check_events(text, name)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise FlowError([Problem(name, 1, "the file is empty")])
            doc = Document(name, None, {(): node.start_mark.line + 1})
            problems: list[Problem] = []
            _walk(node, (), doc, problems)
            if problems:
                raise FlowError(problems)
            doc.data = loader.construct_document(node)
            return doc
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise FlowError([Problem(name, line, f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise FlowError([Problem(name, 1, f"not valid YAML: {exc}")]) from None


def load(path: Path) -> Document:
    return parse(read_text(path), str(path))


def _check_events(text: str, name: str) -> None:
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            message = "anchors and aliases (&name, *name) are not allowed in flow files"
            raise FlowError([Problem(name, line, message)])
        if isinstance(event, yaml.DocumentStartEvent) and nodes:
            raise FlowError([Problem(name, line, "more than one YAML document in the file")])
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise FlowError([Problem(name, line, f"more than {MAX_NODES} values: refused")])
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                message = f"nested deeper than {MAX_DEPTH} levels: refused"
                raise FlowError([Problem(name, line, message)])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _walk(node: yaml.Node, path: Path_, doc: Document, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(doc.name, line, "a key must be plain text"))
                continue
            if key in keys:
                where = ".".join((*path, key))
                problems.append(Problem(doc.name, line, f"{where}: duplicate key"))
            keys.add(key)
            doc.lines[(*path, key)] = line
            _walk(value_node, (*path, key), doc, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            doc.lines[(*path, str(index))] = item.start_mark.line + 1
            _walk(item, (*path, str(index)), doc, problems)
