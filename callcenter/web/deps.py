"""FastAPI dependencies as ``Annotated`` aliases, so tests can override them one by one.

They are ``async def`` even where nothing is awaited: FastAPI runs plain ``def`` dependencies
in its thread pool, a cost paid on every request for no benefit here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.bus import EventBus
from callcenter.services import Services
from callcenter.settings import Settings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessionmaker() as session:
        yield session


async def get_bus(services: ServicesDep) -> EventBus:
    return services.bus


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
BusDep = Annotated[EventBus, Depends(get_bus)]
