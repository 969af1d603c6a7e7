"""``/api/stats``: hotline statistics as JSON, CSV or Excel, for supervisors and admins.

A city sees its own calls and tickets; the province sees everything and, by region, each city.
``from``/``to`` are local dates (Asia/Shanghai by default), both included. The formulas are in
``docs/statistics.md`` and in the Excel file's 口径说明 sheet.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from callcenter.auth.deps import require_roles
from callcenter.auth.principal import Principal
from callcenter.db.base import utcnow
from callcenter.db.models import Role
from callcenter.web.deps import ServicesDep, SessionDep
from ticketing import export
from ticketing.statistics import (
    DEFAULT_THRESHOLD_S,
    Dimension,
    StatisticsService,
    StatsQuery,
    StatsReport,
    StatsRow,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/stats", tags=["statistics"])

StatsUser = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]


class RowOut(BaseModel):
    key: str | None
    label: str
    # Calls (None when grouping by category: a call has no category before its ticket).
    offered: int | None
    answered: int | None
    abandoned: int | None
    answered_within: int | None
    answer_rate: float | None
    loss_rate: float | None
    service_level: float | None
    avg_wait_s: float | None
    avg_talk_s: float | None
    # Tickets (counted in the period they were created in).
    tickets: int
    resolved_on_call: int
    resolved: int
    resolved_on_time: int
    visited: int
    rated: int
    satisfied: int
    first_call_resolution_rate: float | None
    on_time_rate: float | None
    visit_rate: float | None
    satisfaction_rate: float | None

    @classmethod
    def of(cls, row: StatsRow) -> RowOut:
        return cls(key=row.key, label=row.label, **row.metrics())


class StatsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    by: Dimension
    threshold_s: int
    time_zone: str
    scope: str
    rows: list[RowOut]
    total: RowOut


async def get_report(
    principal: StatsUser,
    session: SessionDep,
    services: ServicesDep,
    start: Annotated[date, Query(alias="from", description="first local day, YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="last local day, included")],
    by: Dimension = Dimension.REGION,
    threshold: Annotated[
        int, Query(ge=1, le=600, description="服务水平: answered within this many seconds")
    ] = DEFAULT_THRESHOLD_S,
    region: Annotated[
        str | None, Query(pattern=r"^\d{6}$", description="narrow to a visible region")
    ] = None,
) -> StatsReport:
    """Validate (400 naming the field), then compute within the caller's region scope."""
    query = StatsQuery(start=start, end=end, by=by, threshold_s=threshold, region=region)
    settings = services.settings
    svc = StatisticsService(session, tz=settings.tz, tz_name=settings.time_zone)
    return await svc.report(principal, query)


ReportDep = Annotated[StatsReport, Depends(get_report)]


@router.get("", response_model_by_alias=True)
async def stats(report: ReportDep) -> StatsOut:
    """接通率, 呼损率, 服务水平, 平均等待/通话时长, 一次办结率, 按时办结率, 回访率, 满意度."""
    q = report.query
    return StatsOut(
        from_=q.start,
        to=q.end,
        by=q.by,
        threshold_s=q.threshold_s,
        time_zone=report.time_zone,
        scope=report.scope,
        rows=[RowOut.of(r) for r in report.rows],
        total=RowOut.of(report.total),
    )


def _download(content: bytes, media_type: str, name: str) -> Response:
    headers: dict[str, Any] = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(content, media_type=media_type, headers=headers)


@router.get("/export.csv", response_class=Response)
async def export_csv(report: ReportDep) -> Response:
    """The same figures as CSV (UTF-8 with BOM, for Excel)."""
    return _download(export.to_csv(report), export.CSV_MEDIA_TYPE, export.filename(report, "csv"))


@router.get("/export.xlsx", response_class=Response)
async def export_xlsx(report: ReportDep) -> Response:
    """The same figures as an Excel workbook, with the formulas on sheet 口径说明."""
    content = export.to_xlsx(report, utcnow().astimezone(ZoneInfo(report.time_zone)))
    return _download(content, export.XLSX_MEDIA_TYPE, export.filename(report, "xlsx"))
