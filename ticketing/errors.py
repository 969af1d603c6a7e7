"""Ticketing's domain errors: each a subclass of a core error (so the one HTTP handler maps it)
with its own ``error_id``, so a client can tell "not allowed in this state" from "someone else
changed it first, reload" without parsing messages."""

from __future__ import annotations

from callcenter.errors import Conflict, PermissionDenied


class IllegalTransition(Conflict):
    """The action is not allowed from the ticket's current state (named in the message)."""

    error_id = "illegal-transition"


class TicketChanged(Conflict):
    """The ticket changed since it was read (a lost race or a stale ``version``): reload."""

    error_id = "ticket-changed"


class ExtensionRefused(Conflict):
    """An extension request/decision that the ticket's extension state does not allow."""

    error_id = "extension-refused"


class NotAssignee(PermissionDenied):
    """The action is the assignee's own work, or the ticket was sent to another agent."""

    error_id = "not-assignee"
