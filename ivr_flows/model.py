"""The flow format: typed nodes, the flow that links them, and what the dialplan renderer needs.

A flow is data (``flows/12348.yaml``): ``entries`` name the first node of each AGI entry
(``main``, ``virtual_hold``, ``survey``), ``nodes`` are the steps. The shape is checked here by
pydantic; everything that needs the whole graph (reachability, loops, menu depth, prompts per
language) is in :mod:`ivr_flows.validator`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

LANGUAGES = ("zh-CN", "en", "bo")
"""Languages a prompt may be recorded in: 普通话, English, 藏语 (bo)."""
LANGUAGE_NAMES = {"zh-CN": "普通话", "en": "English", "bo": "藏语"}
ENTRIES = ("main", "virtual_hold", "survey")

ID_PATTERN = r"^[a-z][a-z0-9_-]{0,47}$"
PROMPT_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
AUDIO_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_/-]{0,127}$"
KEY_PATTERN = r"^[0-9*#]$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
TRANSFER_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
QUEUE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
_TEXT = r"^[^\x00-\x1f\x7f]+$"
_WORD = r"^[^\x00-\x20\x7f,]+$"
CATALOGUE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\.ya?ml$"
PATTERN_TEXT = {
    ID_PATTERN: "must be a node id: lowercase letters, digits, _ or - (max 48), no control "
    "characters",
    PROMPT_PATTERN: "must be a prompt id: lowercase letters, digits, ., _ or - (max 64), no "
    "control characters",
    AUDIO_PATTERN: "must be an audio file name without extension (letters, digits, _, -, /)",
    KEY_PATTERN: "must be one DTMF key: 0-9, * or #",
    NAME_PATTERN: "must be lowercase letters, digits or _ (max 32)",
    TRANSFER_PATTERN: "must be a transfer name: letters, digits, _ or - (max 32)",
    QUEUE_PATTERN: "must be a queue name (lowercase letters, digits, -)",
    _TEXT: "must be one line of text without control characters",
    _WORD: "must be a word without spaces, commas or control characters",
    CATALOGUE_PATTERN: "must be a .yaml file name in the flow's folder (no path)",
}


def _text_key(value: object) -> object:
    """``1:`` and ``110:`` are numbers in YAML; keys and targets are text here."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


NodeId = Annotated[str, Field(pattern=ID_PATTERN)]
PromptId = Annotated[str, Field(pattern=PROMPT_PATTERN)]
Key = Annotated[str, BeforeValidator(_text_key), Field(pattern=KEY_PATTERN)]
Language = Literal["zh-CN", "en", "bo"]
Seconds = Annotated[float, Field(gt=0, le=60)]
Retries = Annotated[int, Field(ge=0, le=5)]
ServiceType = Annotated[str, Field(pattern=NAME_PATTERN)]
TransferName = Annotated[str, BeforeValidator(_text_key), Field(pattern=TRANSFER_PATTERN)]
Word = Annotated[str, Field(min_length=1, max_length=16, pattern=_WORD)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- nodes --------------------------------------------------------------------------------------


class PlayNode(_Strict):
    """Play one prompt, then go on."""

    type: Literal["play"]
    prompt: PromptId
    next: NodeId


class MenuNode(_Strict):
    """One DTMF key. Invalid or no input: ``invalid_prompt`` and the menu again, ``retries``
    times, then ``on_failure``. The flow's operator key (0, 人工) works here without listing it.

    ``timeout_s`` and ``on_failure`` are optional in the schema only so that the validator can
    say what is missing in words ("no timeout handling") rather than "field required".
    """

    type: Literal["menu"]
    prompt: PromptId
    options: dict[Key, NodeId] = Field(min_length=1, max_length=12)
    timeout_s: Seconds | None = None
    retries: Retries = 2
    invalid_prompt: PromptId | None = None
    on_failure: NodeId | None = None


class ReadDigitsNode(_Strict):
    """Several digits (e.g. a ticket number) into ``variable``; digits only reach the channel."""

    type: Literal["read_digits"]
    prompt: PromptId
    variable: Annotated[str, Field(pattern=NAME_PATTERN)]
    min_digits: int = Field(default=1, ge=1, le=32)
    max_digits: int = Field(default=18, ge=1, le=32)
    timeout_s: Seconds | None = None
    retries: Retries = 2
    invalid_prompt: PromptId | None = None
    next: NodeId
    on_failure: NodeId | None = None


class SpeechMatch(_Strict):
    words: list[Word] = Field(min_length=1, max_length=32)
    next: NodeId


class SpeechNode(_Strict):
    """Ask a question, record the answer (RECORD FILE), spot keywords with Vosk.

    Matches are tried in order (put 自杀 first: a risk outranks any service); no recognizer,
    no recording or no keyword → ``no_match`` (the DTMF fallback).
    """

    type: Literal["speech"]
    prompt: PromptId
    max_s: Seconds = 8.0
    silence_s: float = Field(default=2.0, ge=0.5, le=10)
    matches: list[SpeechMatch] = Field(min_length=1, max_length=32)
    no_match: NodeId


class BusinessHoursNode(_Strict):
    """Branch on the official working-day calendar (routing rules' opening periods)."""

    type: Literal["business_hours"]
    open: NodeId
    closed: NodeId


class LanguageOption(_Strict):
    language: Language
    prompt: PromptId


class LanguageNode(_Strict):
    """普通话 / English / 藏语: only options whose language the flow enables are offered;
    no key or a wrong key keeps the flow's default language."""

    type: Literal["language"]
    options: dict[Key, LanguageOption] = Field(min_length=1, max_length=6)
    timeout_s: Seconds = 4.0
    next: NodeId


class SetNode(_Strict):
    """Set call facts the routing step reads: service type, extra priority, language."""

    type: Literal["set"]
    service: ServiceType | None = None
    priority: int | None = Field(default=None, ge=0, le=100)
    language: Language | None = None
    emergency: bool | None = None
    next: NodeId


class QueueNode(_Strict):
    """Leave the IVR for a queue: the routing step picks the queue and sets the variables.

    ``alert`` publishes a risk alert (e.g. 自杀风险) on the event bus before queueing.
    """

    type: Literal["queue"]
    prompt: PromptId | None = None
    service: ServiceType | None = None
    emergency: bool = False
    alert: Annotated[str, Field(min_length=1, max_length=32)] | None = None


class CallbackNode(_Strict):
    """Book a callback, confirm it, end the call. ``on_error``: where to go if booking fails."""

    type: Literal["callback"]
    reason: Literal["virtual_hold", "after_hours"]
    prompt: PromptId
    on_error: NodeId | None = None


class SurveyNode(_Strict):
    """Satisfaction survey: keys 1-5 = 非常满意, 满意, 基本满意, 不满意, 非常不满意."""

    type: Literal["survey"]
    prompt: PromptId
    timeout_s: Seconds = 6.0
    retries: Retries = 1
    invalid_prompt: PromptId | None = None
    thanks_prompt: PromptId | None = None


class TransferNode(_Strict):
    type: Literal["transfer"]
    target: TransferName
    prompt: PromptId | None = None


class HangupNode(_Strict):
    type: Literal["hangup"]
    prompt: PromptId | None = None


Node = Annotated[
    PlayNode
    | MenuNode
    | ReadDigitsNode
    | SpeechNode
    | BusinessHoursNode
    | LanguageNode
    | SetNode
    | QueueNode
    | CallbackNode
    | SurveyNode
    | TransferNode
    | HangupNode,
    Field(discriminator="type"),
]
NODE_TYPES = (
    "play menu read_digits speech business_hours language set queue callback survey transfer "
    "hangup".split()
)
TERMINAL = (QueueNode, CallbackNode, SurveyNode, TransferNode, HangupNode)
INPUT = (MenuNode, ReadDigitsNode, SpeechNode, LanguageNode, SurveyNode)


def successors(node: Any) -> list[tuple[str, str]]:
    """``(field, target node id)`` for every way out of ``node`` (operator key not included)."""
    out: list[tuple[str, str]] = []
    if isinstance(node, MenuNode):
        out += [(f"options.{key}", target) for key, target in node.options.items()]
    if isinstance(node, SpeechNode):
        out += [(f"matches.{i}.next", m.next) for i, m in enumerate(node.matches)]
    for name in ("next", "on_failure", "no_match", "open", "closed", "on_error"):
        target = getattr(node, name, None)
        if isinstance(target, str):
            out.append((name, target))
    return out


# --- the flow -----------------------------------------------------------------------------------


class LanguagesConfig(_Strict):
    default: Language = "zh-CN"
    enabled: list[Language] = Field(min_length=1, max_length=3)

    @field_validator("enabled")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a language is listed twice")
        return value


class OperatorConfig(_Strict):
    """The key that reaches a person from any menu (GB/T 33358: always offer 人工)."""

    key: Key = "0"
    next: NodeId


class Transfer(_Strict):
    number: Annotated[str, BeforeValidator(_text_key), Field(pattern=r"^[0-9]{3,20}$")]
    trunk: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    label: Annotated[str, Field(min_length=1, max_length=32)]


class VirtualHold(_Strict):
    key: Key = "1"
    prompt: PromptId
    every_s: int = Field(default=45, ge=10, le=600)


class Queueing(_Strict):
    """Queue announcements the renderer writes into queues.conf (Asterisk plays them)."""

    announce_position: bool = True
    announce_hold_time: bool = True
    announce_every_s: int = Field(default=30, ge=10, le=600)
    virtual_hold: VirtualHold | None = None


class Limits(_Strict):
    max_steps: int = Field(default=60, ge=5, le=500)
    """Nodes one AGI session may run: a safety net even for a flow that slipped through."""
    max_menu_depth: int = Field(default=2, ge=1, le=4)
    node_time_s: float = Field(default=90.0, ge=5, le=600)
    """Wall time one node may take (prompts plus waiting for keys)."""


class Flow(_Strict):
    version: Literal[1]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    prompts: Annotated[str, Field(pattern=CATALOGUE_PATTERN)]
    """The prompt catalogue's file name, in the flow file's folder."""
    languages: LanguagesConfig
    operator: OperatorConfig
    transfers: dict[TransferName, Transfer] = Field(default_factory=dict, max_length=32)
    queueing: Queueing = Field(default_factory=Queueing)
    limits: Limits = Field(default_factory=Limits)
    entries: dict[Literal["main", "virtual_hold", "survey"], NodeId]
    nodes: dict[NodeId, Node] = Field(min_length=1, max_length=500)


class DialplanSettings(_Strict):
    """The renderer's view of a flow (``ivr_flows.render.DialplanSpec``'s transfers and
    ``QueueAnnouncements``, same field names): ``[hotline-transfer]`` extensions and the
    queues.conf announcement / virtual-hold options, with prompts resolved to audio names."""

    transfers: tuple[tuple[str, str, str], ...]
    """``(name, number, trunk)`` per transfer target."""
    announce_position: bool
    announce_holdtime: bool
    announce_every_s: int
    periodic_announce: str | None
    """Audio name of the virtual-hold offer (None: no offer)."""
    periodic_every_s: int
    exit_key: str | None
    languages: tuple[str, ...]


# --- prompt catalogue ---------------------------------------------------------------------------


class Prompt(_Strict):
    """One recording: its file name (Asterisk picks the language folder) and its script per
    language. A language without text has no recording."""

    audio: Annotated[str, Field(pattern=AUDIO_PATTERN)]
    text: dict[Language, Annotated[str, Field(min_length=1, max_length=500, pattern=_TEXT)]] = (
        Field(min_length=1)
    )


class Catalogue(_Strict):
    """``prompts.yaml``: every prompt a flow may name."""

    version: Literal[1]
    prompts: dict[PromptId, Prompt] = Field(min_length=1, max_length=2000)
