"""AMI wire format: an incremental frame decoder and an injection-proof action encoder.

Why our own decoder instead of panoramisk's: panoramisk 1.4 decodes every TCP read on its own
with ``errors="ignore"``, so a UTF-8 character split across two reads (a Chinese caller name)
silently loses bytes.  Here bytes are buffered until a whole message (or line) is there and only
then decoded, so a split can happen anywhere.

Text policy: values are decoded as UTF-8; bytes that are not valid UTF-8 (a GBK caller name such
as ``\\xd5\\xc5\\xc8\\xfd``, seen in trace 12) are kept with the ``surrogateescape`` handler.  That
is lossless -- :func:`raw_bytes` gives back the exact wire bytes, and re-encoding a value into an
action reproduces them -- while a plain ``str`` keeps the decoder simple.  Such strings must not
reach JSON, HTML or logs as they are: :func:`display_text` turns them into clean text (escaped
runs decoded as GB18030, the encoding a non-UTF-8 Chinese name most likely has, else U+FFFD; control
characters made visible).  A GB18030 guess for the whole value was rejected because it would turn a
mixed UTF-8 value into mojibake.

Framing: lines end with CRLF (the decoder also accepts LF-only when the stream starts that way or
when told so); a blank line ends a message.  In CRLF mode a lone CR or LF is part of the value --
Asterisk passes raw CR/LF from a caller name into ``Cdr``'s ``CallerID`` as ``\\ CR \\ LF``, which
only strict CRLF splitting survives.  Bad input never raises out of :meth:`FrameDecoder.feed`: it is
reported as a :class:`MalformedFrame` and the decoder resynchronises at the next blank line.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BANNER_PREFIX",
    "MAX_LINE_BYTES",
    "MAX_MESSAGE_BYTES",
    "AmiEncodingError",
    "AmiInjectionError",
    "Banner",
    "Frame",
    "FrameDecoder",
    "LineEnding",
    "MalformedFrame",
    "display_text",
    "encode_action",
    "has_undecodable",
    "raw_bytes",
]

log = logging.getLogger(__name__)

BANNER_PREFIX = b"Asterisk Call Manager/"
MAX_MESSAGE_BYTES = 64 * 1024
"""Largest message accepted (headers + line ends).  Real messages are < 3 KB (AttendedTransfer)."""
MAX_LINE_BYTES = 1024
"""Asterisk refuses longer action header lines ("Failed to parse message: line too long")."""
_SNIPPET_BYTES = 256
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"

LineEnding = Literal["auto", "crlf", "lf"]


# --------------------------------------------------------------------------- text helpers


def raw_bytes(text: str) -> bytes:
    """The exact wire bytes of a decoded key or value (inverse of the decoder's decoding)."""
    return text.encode(_ENCODING, _ERRORS)


def has_undecodable(text: str) -> bool:
    """True if ``text`` carries bytes that were not valid UTF-8 on the wire."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _escaped_runs(text: str) -> Iterator[tuple[bool, str]]:
    """Split ``text`` into (is_escaped_bytes, run) pieces."""
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or _is_escape(text[i]) != _is_escape(text[start]):
            yield _is_escape(text[start]), text[start:i]
            start = i


def _is_escape(ch: str) -> bool:
    return "\udc80" <= ch <= "\udcff"


def _visible_controls(text: str) -> str:
    """Make C0 controls and DEL visible (``\\r``, ``\\n``, ``\\x00``) so they cannot forge lines."""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            out.append({"\r": "\\r", "\n": "\\n", "\t": "\\t"}.get(ch, f"\\x{code:02x}"))
        else:
            out.append(ch)
    return "".join(out)


def display_text(text: str) -> str:
    """Clean, printable text for UI, JSON and logs.

    Runs of non-UTF-8 bytes are decoded as GB18030 when they form valid GB18030, else replaced by
    U+FFFD; control characters are shown escaped.  The result never contains lone surrogates.
    """
    if text.isprintable():  # no escaped bytes (surrogates) and no controls: nothing to do
        return text
    parts = []
    for escaped, run in _escaped_runs(text):
        if not escaped:
            parts.append(run)
            continue
        try:
            parts.append(raw_bytes(run).decode("gb18030"))
        except UnicodeDecodeError:
            parts.append("\ufffd" * len(run))
    return _visible_controls("".join(parts))


def _decode(data: bytes) -> str:
    return data.decode(_ENCODING, _ERRORS)


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class Frame:
    """One AMI message: ordered ``(key, value)`` pairs plus the exact bytes it came from.

    Lookup is case-insensitive (Asterisk treats keys so).  Repeated keys are kept in order:
    ``frame["Event"]`` is the first one, :meth:`getall` gives all (``ChanVariable``, ``Output``).
    The first lookup builds an index of the lower-cased keys, so further lookups cost one dict
    access instead of a scan of every header.
    """

    fields: tuple[tuple[str, str], ...]
    raw: bytes = field(default=b"", repr=False)
    _index: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # backwards, so that the first of repeated keys wins
            index = {name.lower(): value for name, value in reversed(self.fields)}
            object.__setattr__(self, "_index", index)
        return index

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._lookup().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    def __len__(self) -> int:
        return len(self.fields)

    def getall(self, key: str) -> tuple[str, ...]:
        wanted = key.lower()
        index = self._lookup()
        if wanted not in index:
            return ()
        if len(index) == len(self.fields):  # no key repeats
            return (index[wanted],)
        return tuple(value for name, value in self.fields if name.lower() == wanted)

    def count(self, key: str) -> int:
        """How many times ``key`` occurs (two ``Event`` headers mean one was smuggled in)."""
        wanted = key.lower()
        index = self._lookup()
        if wanted not in index:
            return 0
        if len(index) == len(self.fields):  # no key repeats
            return 1
        return sum(1 for name, _ in self.fields if name.lower() == wanted)

    def keys(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    def items(self) -> tuple[tuple[str, str], ...]:
        return self.fields

    @property
    def name(self) -> str | None:
        """``Event`` name, or ``Response`` status for responses, or ``Action`` for actions."""
        return self.get("Event") or self.get("Response") or self.get("Action")

    @property
    def is_event(self) -> bool:
        return "Event" in self

    @property
    def is_response(self) -> bool:
        return "Response" in self and "Event" not in self


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line Asterisk sends on connect, e.g. ``Asterisk Call Manager/11.0.0``."""

    text: str
    raw: bytes = field(repr=False)

    @property
    def version(self) -> str:
        return self.text.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """Input the decoder dropped: ``reason`` says why, ``data`` holds the first bytes of it."""

    reason: str
    data: bytes
    size: int


ErrorHook = Callable[[MalformedFrame], None]


# --------------------------------------------------------------------------- decoder


class FrameDecoder:
    """Turns a byte stream into :class:`Frame` objects, whatever the TCP chunking.

    ``feed`` returns complete frames only.  The banner (first line of an Asterisk stream) is kept
    in :attr:`banner`.  Dropped input goes to ``on_error`` (exceptions from it are logged, never
    raised) and to :attr:`errors` (the last 32).  Memory stays below about ``max_message`` bytes
    whatever is fed.  A blank line outside a message is skipped, or returned as an empty frame
    with ``empty_frames=True`` (a server must answer it, as Asterisk does).

    Two paths, one result.  Between messages of a CRLF stream (the normal case) a whole message
    is cut at its blank line with one ``bytes.find``, decoded at once and split into fields; a
    message that is not clean (a line without a colon, over the size limit) or not complete
    after ``max_message`` bytes goes through the line-by-line state machine, which also handles
    the banner, LF-only streams and resynchronisation.  Both give the same frames and errors: the
    fast path only takes messages the line-by-line path would accept unchanged.  (Decoding a
    whole message is the same as decoding each key and value on its own: CR, LF, ``:`` and space
    are ASCII, so never part of a multi-byte UTF-8 sequence.)
    """

    def __init__(
        self,
        *,
        line_ending: LineEnding = "auto",
        expect_banner: bool = True,
        max_message: int = MAX_MESSAGE_BYTES,
        on_error: ErrorHook | None = None,
        empty_frames: bool = False,
    ) -> None:
        self._mode: LineEnding = line_ending
        self._empty_frames = empty_frames
        self._expect_banner = expect_banner
        self._max = max_message
        self._on_error = on_error
        self._buf = bytearray()
        self._lines: list[bytes] = []
        self._raw = bytearray()
        self._scanned = 0
        self._message_scanned = 0
        self._discarding = False
        self._partial_dropped = False
        self.banner: Banner | None = None
        self.errors: deque[MalformedFrame] = deque(maxlen=32)
        self.error_count = 0
        self.stray_blank_lines = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for an incomplete message (bounded by ``max_message``)."""
        return len(self._buf) + len(self._raw)

    @property
    def line_ending(self) -> LineEnding:
        return self._mode

    def reset(self) -> None:
        """Forget partial input, e.g. after a reconnect (the next stream starts with a banner)."""
        self._buf.clear()
        self._scanned = 0
        self._message_scanned = 0
        self._lines.clear()
        self._raw.clear()
        self._discarding = False
        self._partial_dropped = False
        self.banner = None

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete (possibly none)."""
        self._buf += data
        frames: list[Frame] = []
        pos = 0
        by_line_until = -1  # the message at this position needs the line-by-line path
        while True:
            if pos > by_line_until and self._between_messages():
                pos, stuck = self._take_messages(pos, frames)
                if not stuck:
                    break
                by_line_until = self._scanned = pos
            line = self._next_line(pos)
            if line is None:
                break
            content, term, pos = line
            frame = self._take_line(content, term)
            if frame is not None:
                frames.append(frame)
        if pos:
            del self._buf[:pos]
            self._scanned = max(0, self._scanned - pos)
            self._message_scanned = max(0, self._message_scanned - pos)
        self._check_partial_size()
        return frames

    # -- whole messages (fast path)

    def _between_messages(self) -> bool:
        return not (
            self._lines
            or self._raw
            or self._discarding
            or self._partial_dropped
            or self._expect_banner
            or self._mode != "crlf"
        )

    def _take_messages(self, pos: int, frames: list[Frame]) -> tuple[int, bool]:
        """Cut the complete, clean messages from ``pos`` on.

        Returns the position reached and whether the message there must go line by line.
        ``_message_scanned`` remembers how far an incomplete message was searched for its end,
        so a message fed one byte at a time costs linear, not quadratic, time.
        """
        buf = self._buf
        while True:
            while buf.startswith(b"\r\n", pos):
                pos += 2
                self.stray_blank_lines += 1
                if self._empty_frames:
                    frames.append(Frame((), b"\r\n"))
            end = buf.find(b"\r\n\r\n", max(pos, self._message_scanned))
            if end < 0:
                self._message_scanned = max(pos, len(buf) - 3)
                return pos, len(buf) - pos > self._max
            if end + 4 - pos > self._max:
                return pos, True
            raw = bytes(buf[pos : end + 4])
            fields = _split_message(raw)
            if fields is None:
                return pos, True
            frames.append(Frame(fields, raw))
            pos = end + 4

    # -- line splitting

    def _next_line(self, pos: int) -> tuple[bytes, bytes, int] | None:
        """Find the line starting at ``pos``: ``(content, terminator, next_pos)`` or None.

        ``_scanned`` remembers how far an incomplete line was already searched, so a long line
        fed one byte at a time costs linear, not quadratic, time.
        """
        start = max(pos, self._scanned)
        newline = self._buf.find(b"\n", start)
        if newline < 0:
            self._scanned = max(len(self._buf) - 1, pos)
            return None
        if self._mode == "auto":
            self._mode = "crlf" if newline > pos and self._buf[newline - 1] == 0x0D else "lf"
        if self._mode == "lf":
            end = newline - 1 if newline > pos and self._buf[newline - 1] == 0x0D else newline
            term = b"\r\n" if end < newline else b"\n"
            return bytes(self._buf[pos:end]), term, newline + 1
        end = self._buf.find(b"\r\n", max(pos, start - 1))
        if end < 0:
            self._scanned = max(len(self._buf) - 1, pos)
            return None
        return bytes(self._buf[pos:end]), b"\r\n", end + 2

    # -- message assembly

    def _take_line(self, line: bytes, term: bytes) -> Frame | None:
        if self._expect_banner:
            self._expect_banner = False
            if line.startswith(BANNER_PREFIX) and not self._partial_dropped:
                self.banner = Banner(_decode(line), line + term)
                return None
        dropped, self._partial_dropped = self._partial_dropped, False
        if self._discarding:
            if not line and not dropped:
                self._discarding = False
            return None
        if not line:
            return self._finish_message(term)
        self._add_line(line, term)
        return None

    def _add_line(self, line: bytes, term: bytes) -> None:
        self._raw += line + term
        if len(self._raw) > self._max:
            self._drop("oversize-message", bytes(self._raw), len(self._raw))
        elif b":" not in line:
            self._drop("line-without-colon", bytes(self._raw), len(self._raw))
        else:
            self._lines.append(line)

    def _finish_message(self, term: bytes) -> Frame | None:
        if not self._lines:
            self.stray_blank_lines += 1
            return Frame((), term) if self._empty_frames else None
        raw = bytes(self._raw) + term
        fields = tuple(_split_line(line) for line in self._lines)
        self._lines.clear()
        self._raw.clear()
        return Frame(fields, raw)

    def _check_partial_size(self) -> None:
        """An unterminated line must not grow without bound: drop it and resync."""
        if len(self._buf) + len(self._raw) <= self._max:
            return
        if not self._discarding:
            snippet = bytes(self._raw[:_SNIPPET_BYTES] or self._buf[:_SNIPPET_BYTES])
            self._drop("oversize-message", snippet, len(self._raw) + len(self._buf))
        if len(self._buf) > 1:
            self._partial_dropped = True
            del self._buf[:-1]
        self._scanned = self._message_scanned = 0

    def _drop(self, reason: str, data: bytes, size: int) -> None:
        """Report the current message as malformed and skip input up to the next blank line."""
        self._lines.clear()
        self._raw.clear()
        self._discarding = True
        self._report(MalformedFrame(reason, data[:_SNIPPET_BYTES], size))

    def _report(self, bad: MalformedFrame) -> None:
        self.errors.append(bad)
        self.error_count += 1
        if self._on_error is None:
            log.warning("ami: dropped malformed input (%s, %d bytes)", bad.reason, bad.size)
            return
        try:
            self._on_error(bad)
        except Exception:
            log.exception("ami: error hook failed")


def _split_message(raw: bytes) -> tuple[tuple[str, str], ...] | None:
    """Fields of a whole CRLF message (``raw`` ends with its blank line); None if a line has no
    colon.  Same result as :func:`_split_line` on each line."""
    fields = []
    for line in raw.decode(_ENCODING, _ERRORS)[:-4].split("\r\n"):
        key, colon, value = line.partition(":")
        if not colon:
            return None
        fields.append((key, value.removeprefix(" ")))
    return tuple(fields)


def _split_line(line: bytes) -> tuple[str, str]:
    """``Key: Value`` -> (key, value); one space after the colon is part of the separator."""
    key, _, value = line.partition(b":")
    if value.startswith(b" "):
        value = value[1:]
    return _decode(key), _decode(value)


# --------------------------------------------------------------------------- encoder


class AmiEncodingError(ValueError):
    """An action that cannot be put on the wire as asked."""


class AmiInjectionError(AmiEncodingError):
    """A key or value would break the line structure (CR, LF, NUL) or forge a header."""


_FORBIDDEN = {"\r": "CR", "\n": "LF", "\0": "NUL"}
_RESERVED_KEYS = frozenset({"action", "actionid"})


def _check_text(what: str, text: str) -> None:
    for ch, label in _FORBIDDEN.items():
        if ch in text:
            raise AmiInjectionError(f"AMI {what} contains {label}: {display_text(text)[:80]!r}")


def _check_key(key: str) -> None:
    _check_text(f"key {display_text(key)[:40]!r}", key)
    if not key or key != key.strip() or ":" in key or " " in key:
        raise AmiInjectionError(f"AMI key {display_text(key)[:40]!r} is not a plain header name")
    if key.lower() in _RESERVED_KEYS:
        raise AmiEncodingError(f"AMI key {key!r} is set by encode_action itself")


def _field_lines(fields: Mapping[str, str | Sequence[str]]) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    for key, value in fields.items():
        _check_key(key)
        values = [value] if isinstance(value, str) else list(value)
        for item in values:
            if not isinstance(item, str):
                raise AmiEncodingError(f"AMI field {key!r} value must be str, got {type(item)}")
            _check_text(f"field {key!r} value", item)
            lines.append((key, item))
    return lines


def encode_action(name: str, fields: Mapping[str, str | Sequence[str]], action_id: str) -> bytes:
    """Encode ``Action``, ``ActionID`` and the fields (a sequence gives repeated lines).

    Everything is validated before anything is produced: CR, LF or NUL anywhere raises
    :class:`AmiInjectionError` naming the field; a line longer than Asterisk's 1024-byte limit
    raises :class:`AmiEncodingError` (Asterisk would answer "line too long").
    """
    _check_text("action name", name)
    _check_text("ActionID", action_id)
    if not name.strip() or name != name.strip():
        raise AmiInjectionError(f"AMI action name {display_text(name)!r} is not a plain name")
    lines = [("Action", name), ("ActionID", action_id), *_field_lines(fields)]
    out = bytearray()
    for key, value in lines:
        line = raw_bytes(f"{key}: {value}")
        if len(line) + 2 > MAX_LINE_BYTES:
            raise AmiEncodingError(f"AMI field {key!r} makes a line over {MAX_LINE_BYTES} bytes")
        out += line + b"\r\n"
    return bytes(out + b"\r\n")
