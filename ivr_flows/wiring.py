"""Builds the flow engine's FastAGI route for the composition root (``callcenter.services``).

The core does not import ``ivr_flows``; the composition root hands :func:`ivr_factory`'s result
to :class:`~callcenter.telephony.Telephony`, which calls it with its routing step once the
routing engine, recorder and clock exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.agi.handoff import RoutingStep
from callcenter.agi.server import Route
from callcenter.bus import EventBus
from callcenter.routing.calendar import is_business_time
from callcenter.speech import Recognizer
from ivr_flows.engine import BookCallback, CallbackRequest, FlowRoute, IvrServices
from ivr_flows.store import FlowStore
from ivr_flows.survey import SurveyStore

if TYPE_CHECKING:
    from callcenter.telephony import IvrFactory, Telephony


def book_callback(sessionmaker: async_sessionmaker[AsyncSession]) -> BookCallback:
    """The IVR's callback booking through ``ticketing.callbacks.book_ivr_callback``."""
    from ticketing.callbacks import CallbackReason, IvrCallbackRequest, book_ivr_callback

    async def book(request: CallbackRequest) -> int:
        reason: CallbackReason = (
            "virtual_hold" if request.reason == "virtual_hold" else "after_hours"
        )
        return await book_ivr_callback(
            sessionmaker,
            IvrCallbackRequest(
                caller_number=request.caller_number,
                region_code=request.region_code,
                reason=reason,
                linkedid=request.linkedid,
                node=request.node,
                language=request.language,
                service_type=request.service_type,
                requested_at=request.requested_at,
            ),
        )

    return book


def ivr_factory(
    store: FlowStore,
    *,
    bus: EventBus,
    sessionmaker: async_sessionmaker[AsyncSession],
    recognizer: Recognizer | None,
) -> IvrFactory:
    def build(tel: Telephony, step: RoutingStep) -> Route:
        rules = tel.engine.rules
        store.check_services(rules.service_types)
        hours = rules.business_hours.hours()
        tz = tel.settings.tz

        def is_open(when: datetime) -> bool:
            return is_business_time(when, hours, tz)

        async def settle() -> None:
            await tel.recorder.flush(5.0)

        async def publish(channel: str, data: Mapping[str, Any]) -> None:
            await bus.publish(channel, data)

        services = IvrServices(
            routing=step,
            now=tel.now,
            is_open=is_open,
            record_path=tel.record_ivr,
            speech_dir=tel.settings.recordings_dir / "ivr",
            province_code=tel.province.province.code,
            recognizer=recognizer,
            book_callback=book_callback(sessionmaker),
            store_survey=SurveyStore(sessionmaker, settle=settle),
            publish=publish,
        )
        return FlowRoute(store, services)

    return build
