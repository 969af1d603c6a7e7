"""Property: no sequence of API calls, by anyone, reaches an illegal state; history is complete.

Hypothesis drives random sequences of actions by random users (agents, the assignee, a
supervisor, follow-up staff, a provincial admin, an agent of another city) against one ticket
through the real API. An oracle written from the specification, independent of
``ticketing.states``, predicts every status code; after each sequence the ticket and its
history are compared with the oracle's replay.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from callcenter.db.models import Role
from tests.ticketing.conftest import OTHER_CITY, PROVINCE, Actor, TicketEnv

DESK = {"agent", "supervisor", "admin"}
HANDLERS = {"agent", "admin"}
OVERSIGHT = {"supervisor", "admin"}
ROLES: dict[str, set[str]] = {
    "dispatch": DESK,
    "sign": HANDLERS,
    "start": HANDLERS,
    "resolve": HANDLERS,
    "visit": {"followup", "admin"},
    "archive": {"followup", "supervisor", "admin"},
    "return": DESK,
    "reassign": DESK,
    "request_extension": HANDLERS,
    "approve_extension": OVERSIGHT,
    "reject_extension": OVERSIGHT,
    "urge": DESK,
    "supervise": OVERSIGHT,
}
HANDLING = ("dispatched", "signed", "in_progress")
MOVES: dict[tuple[str, str], str] = {
    ("dispatch", "accepted"): "dispatched",
    ("sign", "dispatched"): "signed",
    ("start", "signed"): "in_progress",
    ("resolve", "accepted"): "resolved",
    ("resolve", "in_progress"): "resolved",
    ("visit", "resolved"): "visited",
    ("archive", "resolved"): "archived",
    ("archive", "visited"): "archived",
    **{("return", s): "accepted" for s in HANDLING},
    **{("reassign", s): "dispatched" for s in HANDLING},
    **{
        (a, s): s
        for a in ("request_extension", "approve_extension", "reject_extension")
        for s in ("signed", "in_progress")
    },
    **{("urge", s): s for s in HANDLING},
    **{("supervise", s): s for s in ("accepted", *HANDLING)},
}
FINISHED = {"resolved", "visited", "archived"}
ACTOR_KEYS = ["a1", "a2", "sup", "fu", "admin", "out", "auto", "auto", "auto"]
EXTENSION_DAYS = (3, 8, 15)


@dataclass
class Model:
    state: str = "accepted"
    assignee: int | None = None
    pending: int | None = None
    extended: int = 0
    version: int = 1
    done: list[tuple[str, int]] = field(default_factory=list)


async def _actors(env: TicketEnv) -> dict[str, Actor]:
    if "actors" not in env.memo:
        env.memo["actors"] = {
            "a1": await env.actor(),
            "a2": await env.actor(),
            "sup": await env.actor(Role.SUPERVISOR),
            "fu": await env.actor(Role.FOLLOWUP),
            "admin": await env.actor(Role.ADMIN, PROVINCE),
            "out": await env.actor(Role.AGENT, OTHER_CITY),
        }
    actors: dict[str, Actor] = env.memo["actors"]
    return actors


def _pick(key: str, action: str, model: Model, actors: dict[str, Actor]) -> Actor:
    """``auto`` is whoever would plausibly do it, so sequences get deep into the life cycle."""
    if key != "auto":
        return actors[key]
    if action in ("visit", "archive"):
        return actors["fu"]
    if action in ("approve_extension", "reject_extension", "supervise"):
        return actors["sup"]
    by_id = {a.user_id: a for a in actors.values()}
    return by_id.get(model.assignee or 0, actors["a1"])


def _body(action: str, variant: int, actors: dict[str, Actor]) -> dict[str, object] | None:
    target = [actors["a1"].user_id, actors["a2"].user_id, None][variant]
    order: dict[str, object] = (
        {"assignee_id": target} if target else {"handling_unit": "南湖区司法局"}
    )
    bodies: dict[str, dict[str, object]] = {
        "dispatch": order,
        "reassign": {**order, "reason": "改派"},
        "resolve": {"result": "已办结"},
        "visit": {"satisfaction": ["satisfied", "dissatisfied", "very_satisfied"][variant]},
        "return": {"reason": "退回"},
        "request_extension": {"days": EXTENSION_DAYS[variant], "reason": "延期"},
        "reject_extension": {"reason": "驳回"},
        "supervise": {"reason": "督办"},
    }
    return bodies.get(action)


def _expect(model: Model, actor: Actor, action: str, variant: int) -> int:
    """The status code the specification demands."""
    if actor.role.value not in ROLES[action]:
        return 403
    if actor.region_code == OTHER_CITY:
        return 404
    if actor.role is Role.FOLLOWUP and model.state not in FINISHED:
        return 404
    if (action, model.state) not in MOVES:
        return 409
    admin = actor.role is Role.ADMIN
    own_work = action in ("start", "request_extension") or (
        action == "resolve" and model.state == "in_progress"
    )
    if own_work and not admin and model.assignee != actor.user_id:
        return 403
    if action == "sign" and model.assignee not in (None, actor.user_id) and not admin:
        return 403
    if action == "request_extension":
        too_long = model.extended + EXTENSION_DAYS[variant] > 15
        return 409 if model.pending is not None or too_long else 200
    if action in ("approve_extension", "reject_extension") and model.pending is None:
        return 409
    return 200


def _apply(model: Model, actor: Actor, action: str, variant: int, actors: dict[str, Actor]) -> None:
    model.state = MOVES[(action, model.state)]
    model.version += 1
    model.done.append((action, actor.user_id))
    if action in ("dispatch", "reassign"):
        model.assignee = [actors["a1"].user_id, actors["a2"].user_id, None][variant]
    elif action == "sign":
        model.assignee = actor.user_id
    elif action == "return":
        model.assignee, model.pending = None, None
    elif action == "request_extension":
        model.pending = EXTENSION_DAYS[variant]
    elif action == "approve_extension":
        model.extended += model.pending or 0
        model.pending = None
    elif action == "reject_extension":
        model.pending = None


FORWARD = {
    "accepted": "dispatch",
    "dispatched": "sign",
    "signed": "start",
    "in_progress": "resolve",
    "resolved": "visit",
    "visited": "archive",
}


def _step(model: Model) -> st.SearchStrategy[tuple[str, str, int]]:
    """A third each: the next step forward (to get deep), an action the current state allows
    (both by whoever should do it), any action by anyone."""
    legal = sorted({a for a, s in MOVES if s == model.state} or ROLES)
    variants = st.integers(0, 2)
    return st.one_of(
        st.tuples(st.just(FORWARD.get(model.state, "archive")), st.just("auto"), variants),
        st.tuples(st.sampled_from(legal), st.just("auto"), variants),
        st.tuples(st.sampled_from(sorted(ROLES)), st.sampled_from(ACTOR_KEYS), variants),
    )


async def _call(
    env: TicketEnv, actor: Actor, tid: int, action: str, body: dict[str, Any] | None, batched: bool
) -> tuple[int, dict[str, Any]]:
    """The action through the single endpoint, or as the only item of a batch: the status and
    body the caller gets for this ticket either way (the same ones, by the batch contract)."""
    if not batched:
        response = await env.act(actor, tid, action, body)
        return response.status_code, response.json()
    response = await env.post(
        actor, f"/api/tickets/batch/{action}", {"items": [{"id": tid, **(body or {})}]}
    )
    if response.status_code != 200:  # the whole batch refused (role)
        return response.status_code, response.json()
    [item] = response.json()["results"]
    return (200, item["ticket"]) if item["ok"] else (item["status"], item["error"])


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), length=st.integers(0, 16), on_call=st.sampled_from([False] * 5 + [True]))
async def test_no_sequence_of_calls_reaches_an_illegal_state(
    tenv: TicketEnv, data: st.DataObject, length: int, on_call: bool
) -> None:
    actors = await _actors(tenv)
    creator = actors["a1"]
    extra = {"answer": "已当场答复", "resolved_on_call": True} if on_call else {}
    ticket = await tenv.create(creator, **extra)
    tid = ticket["id"]
    model = Model()
    if on_call:
        model.state, model.version = "resolved", 2
        model.done.append(("resolve", creator.user_id))

    for _ in range(length):
        action, key, variant = data.draw(_step(model))
        actor = _pick(key, action, model, actors)
        expected = _expect(model, actor, action, variant)
        batched = action != "supervise" and data.draw(st.booleans(), label="as a batch of one")
        status, body = await _call(
            tenv, actor, tid, action, _body(action, variant, actors), batched
        )
        assert status == expected, (action, actor.role, batched, model, body)
        if (action, model.state) not in MOVES and expected == 409:
            assert f"is {model.state} (" in body["message"], body
        if expected == 200:
            _apply(model, actor, action, variant, actors)
            assert (body["state"], body["version"]) == (model.state, model.version)

    final = (await tenv.get(actors["admin"], f"/api/tickets/{tid}")).json()
    assert (final["state"], final["assignee_id"], final["version"]) == (
        model.state,
        model.assignee,
        model.version,
    )
    assert (final["extended_days"], final["extension_requested_days"]) == (
        model.extended,
        model.pending,
    )
    if final["state"] in ("signed", "in_progress"):
        assert final["assignee_id"] is not None
    assert (final["resolved_at"] is not None) == (final["state"] in FINISHED)

    event(f"final state {model.state}")
    for action in {a for a, _ in model.done}:
        event(f"did {action}")
    history = await tenv.history(actors["admin"], tid)
    assert (history[0]["action"], history[0]["from_state"]) == ("create", None)
    assert [(h["action"], h["actor_id"]) for h in history[1:]] == model.done
    for before, after in itertools.pairwise(history):
        assert after["from_state"] == before["to_state"]
    assert history[-1]["to_state"] == model.state
