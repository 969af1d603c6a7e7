"""The flow engine: one FastAGI route that runs the active flow over a call, node by node.

``AGI(agi://host:4573/ivr?entry=<main|virtual_hold|survey>&node=<pbx>,<city>,<language>)``
(docs/dialplan-contract.md). Each node is a few AGI commands; the run ends by setting
``HOTLINE_ACTION`` (queue/transfer/hangup) and the variables the dialplan needs. Guarantees:

* a hang-up at any command ends the run cleanly (:class:`AgiHangup`) and the path so far is
  still recorded on the call;
* no run exceeds ``limits.max_steps`` nodes (the caller then goes to a person) and no node
  ``limits.node_time_s`` seconds, even if a bad flow slipped past the validator;
* caller text never becomes part of a command: commands carry only flow data (audio names,
  node ids, keywords of the flow), digits checked as digits, and routing results.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from callcenter.agi.handoff import RouteFacts, RoutingStep, linkedid_of
from callcenter.agi.server import AgiError, AgiHangup, AgiRequest
from callcenter.speech import Recognizer, SpeechError, spot_keywords
from ivr_flows.model import (
    ENTRIES,
    BusinessHoursNode,
    CallbackNode,
    HangupNode,
    LanguageNode,
    MenuNode,
    PlayNode,
    QueueNode,
    ReadDigitsNode,
    SetNode,
    SpeechNode,
    SurveyNode,
    TransferNode,
)
from ivr_flows.validator import LoadedFlow
from ticketing.catalogue import Satisfaction

log = logging.getLogger(__name__)

SURVEY_KEYS = {
    "1": Satisfaction.VERY_SATISFIED,
    "2": Satisfaction.SATISFIED,
    "3": Satisfaction.BASICALLY_SATISFIED,
    "4": Satisfaction.DISSATISFIED,
    "5": Satisfaction.VERY_DISSATISFIED,
}
"""Survey keys → ``ticketing.catalogue.Satisfaction`` (非常满意 … 非常不满意)."""

_SAFE_ID = re.compile(r"[^0-9A-Za-z._-]")
_CITY = re.compile(r"^\d{6}$")
_DIGITS = re.compile(r"^[0-9]+$")
CALLBACK_TIMEOUT_S = 10.0
SURVEY_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """What the IVR knows when a caller books a callback (``ticketing.callbacks`` contract)."""

    caller_number: str
    region_code: str | None
    reason: str
    linkedid: str
    node: str
    language: str
    service_type: str | None
    requested_at: datetime


BookCallback = Callable[[CallbackRequest], Awaitable[int]]
StoreSurvey = Callable[[str, str, str], Awaitable[None]]
"""(pbx node, linkedid, satisfaction code) → stored on the call and its tickets."""
RecordPath = Callable[[str, str, tuple[str, ...], str], None]
"""(pbx node, linkedid, IVR path, language) → recorded on the call."""
Publish = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class FlowSource(Protocol):
    def current(self) -> LoadedFlow: ...


@dataclass(slots=True)
class IvrServices:
    """Everything the engine calls out to; each is injected so tests run the real thing or
    leave it out (None: the node takes its error branch)."""

    routing: RoutingStep
    now: Callable[[], datetime]
    is_open: Callable[[datetime], bool]
    record_path: RecordPath
    speech_dir: Path
    province_code: str
    recognizer: Recognizer | None = None
    book_callback: BookCallback | None = None
    store_survey: StoreSurvey | None = None
    publish: Publish | None = None


class _Done(Exception):
    """The run reached a terminal node."""


@dataclass(slots=True)
class _Run:
    loaded: LoadedFlow
    services: IvrServices
    req: AgiRequest
    entry: str
    node: str
    linkedid: str = ""
    language: str = "zh-CN"
    facts: RouteFacts = field(default_factory=RouteFacts)
    path: list[str] = field(default_factory=list)
    choice: str | None = None
    steps: int = 0

    @property
    def city(self) -> str | None:
        city = self.req.args[0] if self.req.args else ""
        return city if _CITY.match(city) else None

    # --- commands -------------------------------------------------------------------------------

    async def play(self, prompt: str | None) -> None:
        if prompt is not None:
            await self.req.command("STREAM", "FILE", self.loaded.audio(prompt), "")

    async def get_data(self, prompt: str, timeout_s: float, max_digits: int) -> str:
        result = await self.req.command(
            "GET", "DATA", self.loaded.audio(prompt), str(int(timeout_s * 1000)), str(max_digits)
        )
        value = str(result.get("result", ("", ""))[0]).strip()
        return value if _DIGITS.match(value) or value in ("*", "#") else ""

    async def set_language(self, language: str) -> None:
        self.language = language
        self.facts = replace(self.facts, language=language)
        await self.req.set_variable("CHANNEL(language)", language)
        await self.req.set_variable("HOTLINE_LANGUAGE", language)

    async def finish(self, action: str, **variables: str) -> None:
        for name, value in variables.items():
            await self.req.set_variable(name, value)
        await self.req.set_variable("HOTLINE_ACTION", action)
        raise _Done


class FlowRoute:
    """The ``ivr`` FastAGI script. ``source.current()`` is asked once per call (hot reload)."""

    def __init__(self, source: FlowSource, services: IvrServices) -> None:
        self.source = source
        self.services = services
        self.runs = 0
        services.speech_dir.mkdir(parents=True, exist_ok=True)
        if services.recognizer is None:
            log.info("IVR: no speech recognizer configured: speech nodes use their DTMF fallback")

    async def __call__(self, req: AgiRequest) -> None:
        loaded = self.source.current()
        entry = req.query.get("entry") or "main"
        run = _Run(loaded, self.services, req, entry, self.services.routing.node_of(req))
        self.runs += 1
        start = loaded.flow.entries.get(entry) if entry in ENTRIES else None  # type: ignore[call-overload]
        try:
            run.linkedid = await linkedid_of(req)
            await self._begin(run)
            if start is None:
                log.warning("IVR: flow %s has no entry %r: hanging up", loaded.version, entry[:32])
                await run.finish("hangup")
            else:
                await self._walk(run, start)
        except _Done:
            if not req.hung_up:
                await req.set_variable("IVR_PATH", ",".join(run.path)[:1000])
        except AgiHangup:
            run.path.append("hangup")
            raise
        finally:
            if run.linkedid:
                self.services.record_path(run.node, run.linkedid, tuple(run.path), run.language)

    async def _begin(self, run: _Run) -> None:
        flow = run.loaded.flow
        asked = run.req.args[1] if len(run.req.args) > 1 else ""
        language = asked if asked in flow.languages.enabled else flow.languages.default
        if run.entry == "main":
            await run.req.command("ANSWER")
            await run.set_language(flow.languages.default)
        else:
            earlier = await run.req.result_value("GET", "VARIABLE", "IVR_PATH")
            run.path = [p for p in earlier.split(",") if p][:200]
            service = await run.req.result_value("GET", "VARIABLE", "HOTLINE_SERVICE")
            run.facts = replace(run.facts, service_type=service[:32] or None)
            run.language = language
            run.facts = replace(run.facts, language=language)

    async def _walk(self, run: _Run, node_id: str) -> None:
        limits = run.loaded.flow.limits
        current: str | None = node_id
        while current is not None:
            run.steps += 1
            if run.steps > limits.max_steps:
                log.error(
                    "IVR: flow %s ran %d nodes on %s: stopped (step limit)",
                    run.loaded.version,
                    limits.max_steps,
                    run.linkedid,
                )
                run.path.append("step-limit")
                await self._give_up(run)
            run.path.append(current)
            try:
                async with asyncio.timeout(limits.node_time_s):
                    current = await self._step(run, current)
            except TimeoutError:
                raise AgiError(
                    f"IVR node {current} took longer than {limits.node_time_s:g} s"
                ) from None

    async def _give_up(self, run: _Run) -> None:
        """The run went wrong (step limit): a person takes the main call; other entries end."""
        if run.entry != "main":
            await run.finish("hangup")
        await self.services.routing(run.req, run.facts, run.linkedid)
        await run.finish("queue")

    async def _step(self, run: _Run, node_id: str) -> str | None:
        node = run.loaded.flow.nodes[node_id]
        match node:
            case PlayNode():
                await run.play(node.prompt)
                return node.next
            case MenuNode():
                return await self._menu(run, node_id, node)
            case ReadDigitsNode():
                return await self._read_digits(run, node_id, node)
            case SpeechNode():
                return await self._speech(run, node_id, node)
            case BusinessHoursNode():
                return node.open if self.services.is_open(self.services.now()) else node.closed
            case LanguageNode():
                return await self._language(run, node_id, node)
            case SetNode():
                return await self._set(run, node)
            case QueueNode():
                await self._queue(run, node_id, node)
            case CallbackNode():
                return await self._callback(run, node_id, node)
            case SurveyNode():
                await self._survey(run, node_id, node)
            case TransferNode():
                await run.play(node.prompt)
                await run.finish("transfer", HOTLINE_TRANSFER=node.target)
            case HangupNode():
                await run.play(node.prompt)
                await run.finish("hangup")
        return None  # pragma: no cover - every terminal node raises _Done

    # --- input nodes ------------------------------------------------------------------------------

    async def _menu(self, run: _Run, node_id: str, node: MenuNode) -> str:
        operator = run.loaded.flow.operator
        timeout = node.timeout_s or 5.0
        for attempt in range(node.retries + 1):
            key = await run.get_data(node.prompt, timeout, 1)
            if key == operator.key or key in node.options:
                run.path[-1] = f"{node_id}:{key}"
                if run.choice is None:  # the first menu answered: the caller's main choice
                    run.choice = key
                    await run.req.set_variable("IVR_CHOICE", key)
                return operator.next if key == operator.key else node.options[key]
            if attempt < node.retries:
                await run.play(node.invalid_prompt)
        run.path[-1] = f"{node_id}:failed"
        assert node.on_failure is not None  # the validator requires it
        return node.on_failure

    async def _read_digits(self, run: _Run, node_id: str, node: ReadDigitsNode) -> str:
        timeout = node.timeout_s or 5.0
        for attempt in range(node.retries + 1):
            digits = await run.get_data(node.prompt, timeout, node.max_digits)
            if _DIGITS.match(digits) and node.min_digits <= len(digits) <= node.max_digits:
                await run.req.set_variable(f"IVR_{node.variable.upper()}", digits)
                return node.next
            if attempt < node.retries:
                await run.play(node.invalid_prompt)
        run.path[-1] = f"{node_id}:failed"
        assert node.on_failure is not None
        return node.on_failure

    async def _language(self, run: _Run, node_id: str, node: LanguageNode) -> str:
        flow = run.loaded.flow
        offered = [(k, o) for k, o in node.options.items() if o.language in flow.languages.enabled]
        chosen = flow.languages.default
        if len(offered) > 1:
            for _, option in offered[:-1]:
                await run.play(option.prompt)
            key = await run.get_data(offered[-1][1].prompt, node.timeout_s, 1)
            if key == flow.operator.key:
                run.path[-1] = f"{node_id}:{key}"
                return flow.operator.next
            chosen = next((o.language for k, o in offered if k == key), chosen)
        elif offered:
            chosen = offered[0][1].language
        run.path[-1] = f"{node_id}:{chosen}"
        await run.set_language(chosen)
        return node.next

    async def _speech(self, run: _Run, node_id: str, node: SpeechNode) -> str:
        recognizer = self.services.recognizer
        if recognizer is None:
            run.path[-1] = f"{node_id}:dtmf"
            return node.no_match
        await run.play(node.prompt)
        base = self.services.speech_dir / f"{_safe_id(run.req)}-{node_id}"
        wav = base.with_name(base.name + ".wav")
        try:
            await run.req.command(
                "RECORD",
                "FILE",
                str(base),
                "wav",
                "#",
                str(int(node.max_s * 1000)),
                "0",
                f"s={max(1, round(node.silence_s))}",
            )
            word = await self._recognize(recognizer, wav, node)
        except AgiHangup:
            raise
        except AgiError as exc:  # the PBX could not record: ask with keys instead
            log.warning("IVR: RECORD FILE failed on %s, DTMF fallback: %s", run.linkedid, exc)
            word = None
        finally:
            wav.unlink(missing_ok=True)
        if word is None:
            run.path[-1] = f"{node_id}:no-match"
            return node.no_match
        run.path[-1] = f"{node_id}:{word}"
        await run.req.set_variable("IVR_KEYWORD", word)
        index = next(i for i, m in enumerate(node.matches) if word in m.words)
        return node.matches[index].next

    async def _recognize(self, recognizer: Recognizer, wav: Path, node: SpeechNode) -> str | None:
        if not os.path.isfile(wav):  # noqa: ASYNC240 - one stat of a local file
            log.info("IVR: no recording at %s (caller said nothing?)", wav.name)
            return None
        words = {w: w for m in node.matches for w in m.words}
        try:
            transcript = await recognizer.transcribe_file(wav, grammar=[*words, "[unk]"])
        except SpeechError as exc:
            log.warning("IVR: speech recognition failed, DTMF fallback: %s", exc)
            return None
        return spot_keywords(transcript, words)

    # --- facts and endings ------------------------------------------------------------------------

    async def _set(self, run: _Run, node: SetNode) -> str:
        facts = run.facts
        if node.service is not None:
            facts = replace(facts, service_type=node.service)
        if node.priority is not None:
            facts = replace(facts, extra_priority=node.priority)
        if node.emergency is not None:
            facts = replace(facts, emergency=node.emergency)
        run.facts = facts
        if node.language is not None:
            await run.set_language(node.language)
        return node.next

    async def _queue(self, run: _Run, node_id: str, node: QueueNode) -> None:
        if node.service is not None:
            run.facts = replace(run.facts, service_type=node.service)
        if node.emergency:
            run.facts = replace(run.facts, emergency=True)
        if node.alert is not None:
            await self._alert(run, node_id, node.alert)
        await run.play(node.prompt)
        await self.services.routing(run.req, run.facts, run.linkedid)
        await run.finish("queue", HOTLINE_LANGUAGE=run.language)

    async def _alert(self, run: _Run, node_id: str, alert: str) -> None:
        """Tell supervisors now; a bus failure must not keep the caller from a person."""
        region = run.city or self.services.province_code
        keyword = run.path[-2].partition(":")[2] if len(run.path) > 1 else ""
        data = {
            "kind": "risk",
            "alert": alert,
            "keyword": keyword,
            "ivr_node": node_id,
            "node": run.node,
            "linkedid": run.linkedid,
            "region_code": region,
            "at": datetime.now(UTC).isoformat(),
        }
        log.warning("IVR risk alert %s on call %s (%s)", alert, run.linkedid, region)
        if self.services.publish is None:
            return
        try:
            await self.services.publish(f"alerts.{region}.risk", data)
        except Exception:
            log.exception("IVR: could not publish the risk alert for call %s", run.linkedid)

    async def _callback(self, run: _Run, node_id: str, node: CallbackNode) -> str:
        book = self.services.book_callback
        if book is not None:
            request = CallbackRequest(
                caller_number=run.req.text("agi_callerid"),
                region_code=run.city,
                reason=node.reason,
                linkedid=run.linkedid,
                node=run.node,
                language=run.language,
                service_type=run.facts.service_type,
                requested_at=self.services.now(),
            )
            try:
                async with asyncio.timeout(CALLBACK_TIMEOUT_S):
                    task_id = await book(request)
            except Exception as exc:  # any failure: the caller must still be looked after
                log.warning("IVR: callback booking failed for call %s: %s", run.linkedid, exc)
            else:
                run.path[-1] = f"{node_id}:booked"
                await run.play(node.prompt)
                await run.finish("hangup", IVR_CALLBACK_ID=str(task_id))
        run.path[-1] = f"{node_id}:failed"
        if node.on_error is None:
            await run.finish("hangup")
        return node.on_error or ""

    async def _survey(self, run: _Run, node_id: str, node: SurveyNode) -> None:
        for attempt in range(node.retries + 1):
            key = await run.get_data(node.prompt, node.timeout_s, 1)
            level = SURVEY_KEYS.get(key)
            if level is not None:
                run.path[-1] = f"{node_id}:{key}"
                await self._store_survey(run, level.value)
                await run.req.set_variable("IVR_SATISFACTION", level.value)
                await run.play(node.thanks_prompt)
                await run.finish("hangup")
            if attempt < node.retries:
                await run.play(node.invalid_prompt)
        run.path[-1] = f"{node_id}:none"
        await run.finish("hangup")

    async def _store_survey(self, run: _Run, level: str) -> None:
        store = self.services.store_survey
        if store is None:
            log.warning(
                "IVR: survey answer %s of call %s not stored (no store)", level, run.linkedid
            )
            return
        try:
            async with asyncio.timeout(SURVEY_TIMEOUT_S):
                await store(run.node, run.linkedid, level)
        except Exception:
            log.exception("IVR: could not store survey answer %s of call %s", level, run.linkedid)


def _safe_id(req: AgiRequest) -> str:
    """A file-name-safe id for this channel's recordings (``agi_uniqueid`` is Asterisk's)."""
    uniqueid = _SAFE_ID.sub("", req.env.get("agi_uniqueid", ""))[:64]
    return uniqueid or uuid.uuid4().hex
