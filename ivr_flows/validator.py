"""Refuse a flow that could strand a caller, before it reaches a single call.

Shape first (pydantic, with the line of each bad key), then the graph: unknown node, prompt and
transfer ids, unreachable nodes, menus without timeout or invalid-input handling, the operator
key (人工) taken by a menu option, menus deeper than ``limits.max_menu_depth`` (GB/T 33358),
loops that never reach an end or never wait for the caller, and prompts not recorded in a
language the flow enables. Every problem is reported, each with file, line and node.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ivr_flows import loader
from ivr_flows.errors import FlowError, Problem
from ivr_flows.loader import Document
from ivr_flows.model import (
    INPUT,
    NODE_TYPES,
    PATTERN_TEXT,
    TERMINAL,
    Catalogue,
    DialplanSettings,
    Flow,
    LanguageNode,
    MenuNode,
    ReadDigitsNode,
    TransferNode,
    successors,
)

M = TypeVar("M", bound=BaseModel)

DEFAULT_FLOW = Path(__file__).resolve().parent / "flows" / "12348.yaml"


@dataclass(frozen=True, slots=True)
class LoadedFlow:
    """A flow that passed every check, with its catalogue and a version hash of both files."""

    flow: Flow
    catalogue: Catalogue
    path: Path
    catalogue_path: Path
    version: str

    def audio(self, prompt: str) -> str:
        return self.catalogue.prompts[prompt].audio

    def dialplan_settings(self) -> DialplanSettings:
        """What the dialplan renderer needs from this flow (the lead wires it into
        ``ivr_flows.render.DialplanSpec``)."""
        flow = self.flow
        hold = flow.queueing.virtual_hold
        return DialplanSettings(
            transfers=tuple((name, t.number, t.trunk) for name, t in flow.transfers.items()),
            announce_position=flow.queueing.announce_position,
            announce_holdtime=flow.queueing.announce_hold_time,
            announce_every_s=flow.queueing.announce_every_s,
            periodic_announce=None if hold is None else self.audio(hold.prompt),
            periodic_every_s=hold.every_s if hold is not None else flow.queueing.announce_every_s,
            exit_key=None if hold is None else hold.key,
            languages=tuple(flow.languages.enabled),
        )


def load_flow(path: Path, *, service_types: Collection[str] | None = None) -> LoadedFlow:
    """Read and check a flow file and its catalogue; :class:`FlowError` lists every problem."""
    flow_text = loader.read_text(path)
    doc = loader.parse(flow_text, str(path))
    flow = _model(Flow, doc)
    catalogue_path = path.parent / flow.prompts
    cat_text = loader.read_text(catalogue_path)
    cat_doc = loader.parse(cat_text, str(catalogue_path))
    catalogue = _model(Catalogue, cat_doc)
    problems = list(check(flow, catalogue, doc, service_types=service_types))
    if problems:
        raise FlowError(problems)
    digest = hashlib.sha256(flow_text.encode() + b"\0" + cat_text.encode()).hexdigest()[:12]
    return LoadedFlow(flow, catalogue, path, catalogue_path, digest)


def validate_file(path: Path, *, service_types: Collection[str] | None = None) -> list[Problem]:
    """Every problem of one flow file (empty: valid). Never raises for bad content."""
    try:
        load_flow(path, service_types=service_types)
    except FlowError as exc:
        return exc.problems
    return []


# --- shape ----------------------------------------------------------------------------------------


def _model(cls: type[M], doc: Document) -> M:
    if not isinstance(doc.data, dict):
        raise FlowError([Problem(doc.name, 1, "the file must be a mapping (key: value)")])
    try:
        return cls.model_validate(doc.data)
    except ValidationError as exc:
        raise FlowError([_shape_problem(doc, err) for err in exc.errors()]) from None
    except RecursionError:  # pydantic on data nested past the loader's limit (cannot happen)
        raise FlowError([Problem(doc.name, 1, "nested too deeply")]) from None


def _shape_problem(doc: Document, err: ErrorDetails) -> Problem:
    loc: list[str] = []
    for part in err["loc"]:
        text = str(part)
        if text == "[key]" or text.startswith("function-"):
            continue
        if len(loc) == 2 and loc[0] == "nodes" and text in NODE_TYPES:
            continue  # the discriminated union adds the node type to the path
        loc.append(text)
    problem = doc.problem(tuple(loc), "")
    inside = loc[2:] if loc[:1] == ["nodes"] else loc
    where = ".".join(inside)
    reason = _reason(err)
    return Problem(
        problem.file, problem.line, f"{where}: {reason}" if where else reason, problem.node
    )


def _reason(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind == "missing":
        return f"missing required key {str(err['loc'][-1])!r}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_invalid":
        return f"unknown node type {ctx.get('tag')!r} (one of: {', '.join(NODE_TYPES)})"
    if kind == "union_tag_not_found":
        return f"missing 'type' (one of: {', '.join(NODE_TYPES)})"
    if kind == "string_pattern_mismatch":
        return PATTERN_TEXT.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}")
    message = str(err["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "must be").replace("Input ", "")


# --- graph ----------------------------------------------------------------------------------------


def check(
    flow: Flow,
    catalogue: Catalogue,
    doc: Document,
    *,
    service_types: Collection[str] | None = None,
) -> Iterator[Problem]:
    """Everything wrong with a well-shaped flow, in file order of the checks."""
    yield from _references(flow, catalogue, doc, service_types)
    edges = _edges(flow)
    yield from _unreachable(flow, doc, edges)
    yield from _dead_ends(flow, doc, edges)
    yield from _menu_depth(flow, doc, edges)


def _node_refs(flow: Flow) -> Iterator[tuple[tuple[str, ...], str]]:
    yield ("operator", "next"), flow.operator.next
    for entry, target in flow.entries.items():
        yield ("entries", entry), target
    for node_id, node in flow.nodes.items():
        for field, target in successors(node):
            yield ("nodes", node_id, *field.split(".")), target


def _prompt_refs(flow: Flow) -> Iterator[tuple[tuple[str, ...], str]]:
    if flow.queueing.virtual_hold is not None:
        yield ("queueing", "virtual_hold", "prompt"), flow.queueing.virtual_hold.prompt
    for node_id, node in flow.nodes.items():
        for field in ("prompt", "invalid_prompt", "thanks_prompt"):
            value = getattr(node, field, None)
            if isinstance(value, str):
                yield ("nodes", node_id, field), value
        if isinstance(node, LanguageNode):
            for key, option in node.options.items():
                yield ("nodes", node_id, "options", key, "prompt"), option.prompt


def _references(
    flow: Flow, catalogue: Catalogue, doc: Document, service_types: Collection[str] | None
) -> Iterator[Problem]:
    if "main" not in flow.entries:
        yield doc.problem(("entries",), "entries: missing entry 'main' (where a new call starts)")
    if flow.languages.default not in flow.languages.enabled:
        message = f"languages.default {flow.languages.default!r} is not in languages.enabled"
        yield doc.problem(("languages", "default"), message)
    for path, target in _node_refs(flow):
        if target not in flow.nodes:
            yield doc.problem(path, f"{_field(path)}: unknown node {target!r}")
    enabled = flow.languages.enabled
    for path, prompt_id in _prompt_refs(flow):
        prompt = catalogue.prompts.get(prompt_id)
        if prompt is None:
            yield doc.problem(path, f"{_field(path)}: unknown prompt {prompt_id!r}")
            continue
        if path[-2:-1] == ("options",) or (len(path) > 4 and path[3] == "options"):
            continue  # a language option is only offered when its language is enabled
        for language in enabled:
            if language not in prompt.text:
                message = (
                    f"{_field(path)}: prompt {prompt_id!r} has no recording for language "
                    f"{language!r}, which the flow enables (add text.{language} in the catalogue)"
                )
                yield doc.problem(path, message)
    for node_id, node in flow.nodes.items():
        yield from _node_checks(flow, node_id, node, doc, service_types)


def _node_checks(
    flow: Flow, node_id: str, node: Any, doc: Document, service_types: Collection[str] | None
) -> Iterator[Problem]:
    path: tuple[str, ...] = ("nodes", node_id)
    if isinstance(node, MenuNode | ReadDigitsNode):
        kind = "menu" if isinstance(node, MenuNode) else "read_digits"
        if node.timeout_s is None:
            message = f"{kind} has no timeout handling: set timeout_s (seconds to wait for a key)"
            yield doc.problem(path, message)
        if node.on_failure is None:
            message = (
                f"{kind} has no invalid-input handling: set on_failure (where the caller goes "
                "after the retries, e.g. to an agent)"
            )
            yield doc.problem(path, message)
    if isinstance(node, MenuNode | LanguageNode) and flow.operator.key in node.options:
        message = (
            f"options.{flow.operator.key}: key {flow.operator.key!r} is the operator key "
            "(operator.key, 人工) and already works in every menu; remove it here"
        )
        yield doc.problem((*path, "options", flow.operator.key), message)
    if isinstance(node, ReadDigitsNode) and node.min_digits > node.max_digits:
        yield doc.problem((*path, "min_digits"), "min_digits is larger than max_digits")
    if isinstance(node, TransferNode) and node.target not in flow.transfers:
        known = ", ".join(flow.transfers) or "none"
        message = f"target: unknown transfer {node.target!r} (transfers: {known})"
        yield doc.problem((*path, "target"), message)
    service = getattr(node, "service", None)
    if service_types is not None and service is not None and service not in service_types:
        message = f"service: unknown service type {service!r} (routing rules: " + ", ".join(
            sorted(service_types)
        )
        yield doc.problem((*path, "service"), message + ")")


def _field(path: tuple[str, ...]) -> str:
    return ".".join(path[2:]) if path[0] == "nodes" else ".".join(path)


def _edges(flow: Flow) -> dict[str, list[str]]:
    """Node → next nodes that exist, including the operator key out of every menu."""
    out: dict[str, list[str]] = {}
    for node_id, node in flow.nodes.items():
        targets = [t for _, t in successors(node) if t in flow.nodes]
        if isinstance(node, MenuNode | LanguageNode) and flow.operator.next in flow.nodes:
            targets.append(flow.operator.next)
        out[node_id] = targets
    return out


def _reachable(starts: Collection[str], edges: dict[str, list[str]]) -> set[str]:
    seen = {s for s in starts if s in edges}
    todo = deque(seen)
    while todo:
        for target in edges[todo.popleft()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _unreachable(flow: Flow, doc: Document, edges: dict[str, list[str]]) -> Iterator[Problem]:
    """Report where an unreachable part starts, not every node behind it (a typo in one
    ``next`` would otherwise bury itself under the whole rest of the flow)."""
    seen = _reachable(list(flow.entries.values()), edges)
    lost = [n for n in flow.nodes if n not in seen]
    led_to = {t for n in lost for t in edges[n] if t != n}
    starts = [n for n in lost if n not in led_to] or lost[:1]
    for node_id in starts:
        yield doc.problem(("nodes", node_id), "unreachable: no entry or other node leads here")


def _dead_ends(flow: Flow, doc: Document, edges: dict[str, list[str]]) -> Iterator[Problem]:
    reverse: dict[str, list[str]] = {n: [] for n in edges}
    for source, targets in edges.items():
        for target in targets:
            reverse[target].append(source)
    finishing = _reachable(
        [n for n, node in flow.nodes.items() if isinstance(node, TERMINAL)], reverse
    )
    for component in _cycles(edges):
        names = " → ".join([*component, component[0]])
        if not any(n in finishing for n in component):
            message = (
                f"loop without an exit: {names} never reaches a queue, transfer, callback, "
                "survey or hang-up"
            )
            yield doc.problem(("nodes", component[0]), message)
        elif not any(isinstance(flow.nodes[n], INPUT) for n in component):
            message = f"loop without caller input: {names} would repeat forever"
            yield doc.problem(("nodes", component[0]), message)


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(sorted(component, key=list(edges).index))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _menu_depth(flow: Flow, doc: Document, edges: dict[str, list[str]]) -> Iterator[Problem]:
    """Fewest menus a caller passes to reach each menu (0-1 BFS); too many is too deep."""
    limit = flow.limits.max_menu_depth
    depth: dict[str, int] = {}
    via: dict[str, str | None] = {}
    todo: deque[str] = deque()
    for start in flow.entries.values():
        if start in edges:
            depth[start] = _menus(flow, start)
            via[start] = None
            todo.append(start)
    while todo:
        current = todo.popleft()
        for target in edges[current]:
            cost = depth[current] + _menus(flow, target)
            if cost < depth.get(target, 1 << 30):
                depth[target], via[target] = cost, current
                if _menus(flow, target):
                    todo.append(target)
                else:
                    todo.appendleft(target)
    for node_id, node in flow.nodes.items():
        if isinstance(node, MenuNode) and depth.get(node_id, 0) > limit:
            chain = [node_id]
            while (previous := via.get(chain[-1])) is not None:
                chain.append(previous)
            menus = [n for n in reversed(chain) if isinstance(flow.nodes[n], MenuNode)]
            message = (
                f"menu level {depth[node_id]} is deeper than limits.max_menu_depth ({limit}): "
                + " → ".join(menus)
            )
            yield doc.problem(("nodes", node_id), message)


def _menus(flow: Flow, node_id: str) -> int:
    return 1 if isinstance(flow.nodes[node_id], MenuNode) else 0
