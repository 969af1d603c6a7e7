"""``callcenter ivr validate FILE...`` and ``callcenter ivr show``: flows checked before deploy.

``validate`` prints every problem as ``file:line: node X: message`` and exits 1 when any file
is invalid (0 when all are valid), so it can gate a deployment or a commit hook.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path

import click

from ivr_flows.errors import FlowError
from ivr_flows.model import LANGUAGE_NAMES, successors
from ivr_flows.validator import DEFAULT_FLOW, LoadedFlow, load_flow, validate_file


def _service_types() -> Collection[str] | None:
    """The routing rules' service types, when the configured province loads; else no check."""
    from callcenter.regions.provinces import load_province, province_file
    from callcenter.routing.rules import load_default_rules
    from callcenter.settings import load_settings

    try:
        settings = load_settings()
        rules = load_default_rules(load_province(province_file(settings.province_code)))
    except Exception as exc:  # a broken environment must not hide the flow's own problems
        click.echo(f"(service types not checked: {exc})", err=True)
        return None
    return set(rules.service_types)


@click.group("ivr")
def ivr() -> None:
    """The unified IVR flow: validate flow files, show the active flow."""


@ivr.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check flow files (and their prompt catalogues); exit 1 if any is invalid."""
    services = _service_types()
    failed = 0
    for path in files:
        problems = validate_file(path, service_types=services)
        if problems:
            failed += 1
            for problem in problems:
                click.echo(str(problem))
            click.echo(f"{path}: INVALID ({len(problems)} problem(s))")
        else:
            loaded = load_flow(path, service_types=services)
            click.echo(f"{path}: OK (version {loaded.version}, {len(loaded.flow.nodes)} nodes)")
    sys.exit(1 if failed else 0)


@ivr.command("show")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def show(file: Path | None) -> None:
    """Print the active flow (CALLCENTER_IVR_FLOW, or FILE): entries, nodes and their exits."""
    if file is None:
        from callcenter.settings import load_settings

        file = load_settings().ivr_flow or DEFAULT_FLOW
    try:
        loaded = load_flow(file)
    except FlowError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(describe(loaded))


def describe(loaded: LoadedFlow) -> str:
    flow = loaded.flow
    languages = ", ".join(f"{code} {LANGUAGE_NAMES[code]}" for code in flow.languages.enabled)
    lines = [
        f"{flow.name}  ({loaded.path}, version {loaded.version})",
        f"languages: {languages}; default {flow.languages.default}",
        f"operator key {flow.operator.key} → {flow.operator.next}",
        "entries: " + ", ".join(f"{k} → {v}" for k, v in flow.entries.items()),
        "transfers: " + ", ".join(f"{k} ({t.label})" for k, t in flow.transfers.items()),
        "nodes:",
    ]
    for node_id, node in flow.nodes.items():
        exits = ", ".join(f"{name} → {target}" for name, target in successors(node))
        prompt = getattr(node, "prompt", None)
        text = ""
        if isinstance(prompt, str):
            text = " 「" + loaded.catalogue.prompts[prompt].text.get(flow.languages.default, "")
            text = text[:40] + "」"
        lines.append(f"  {node_id} [{node.type}]{text}" + (f"  {exits}" if exits else ""))
    return "\n".join(lines)
