"""What goes wrong with a flow file, said so that an operator can fix it.

Every problem names the file, the line and, where there is one, the node; ``str()`` of a
:class:`FlowError` is one ``file:line: node X: message`` line per problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    message: str
    node: str | None = None

    def __str__(self) -> str:
        where = f"node {self.node}: " if self.node else ""
        return f"{self.file}:{self.line}: {where}{self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "node": self.node, "message": self.message}


class FlowError(Exception):
    """The flow (or its prompt catalogue) is unusable; ``problems`` lists every reason found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class IvrUnavailable(Exception):
    """A service the IVR needs (callback booking, survey storage) failed for this call."""
