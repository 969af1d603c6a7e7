"""CSV and Excel renderings of a :class:`~ticketing.statistics.StatsReport`.

Both carry Chinese headers and a 合计 row. The CSV starts with a UTF-8 BOM so that Excel opens
it as UTF-8 instead of the system code page. Any text cell that a spreadsheet would read as a
formula (starting with ``= + - @``, or a tab/CR that some programs strip first) gets a leading
apostrophe: names come from users and are not trusted (CSV/formula injection). The workbook
has a second sheet, 口径说明, with every formula, its numerator and denominator.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Alignment, Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from ticketing.statistics import (
    CALL_FIELDS,
    COLUMN_LABELS,
    DIMENSION_LABELS,
    FORMULAS,
    RATE_FIELDS,
    TICKET_FIELDS,
    StatsReport,
)

CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """Neutralise a cell a spreadsheet would evaluate (OWASP CSV injection advice)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _fields(report: StatsReport) -> tuple[str, ...]:
    calls = () if report.query.by.value == "category" else CALL_FIELDS
    return calls + TICKET_FIELDS


def headers(report: StatsReport) -> list[str]:
    n = report.query.threshold_s
    names = [COLUMN_LABELS[f].format(n=n) for f in _fields(report)]
    return [DIMENSION_LABELS[report.query.by], "编码", *names]


def _rows(report: StatsReport) -> Iterator[list[Any]]:
    """Label, key, then the figures: numbers as numbers, ``None`` as an empty cell."""
    fields = _fields(report)
    for row in [*report.rows, report.total]:
        metrics = row.metrics()
        yield [safe_text(row.label), row.key or "", *(metrics[f] for f in fields)]


def _title(report: StatsReport) -> str:
    q = report.query
    return f"12348热线统计 {q.start.isoformat()} 至 {q.end.isoformat()}（{report.time_zone}）"


def filename(report: StatsReport, extension: str) -> str:
    q = report.query
    return f"hotline-stats-{q.by.value}-{q.start:%Y%m%d}-{q.end:%Y%m%d}.{extension}"


def to_csv(report: StatsReport) -> bytes:
    """UTF-8 with BOM; rates as percentages (``81.25%``), which Excel reads as numbers."""
    fields = _fields(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers(report))
    for cells in _rows(report):
        label, key, *values = cells
        shown = [_csv_value(f, v) for f, v in zip(fields, values, strict=True)]
        writer.writerow([label, key, *shown])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _csv_value(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in RATE_FIELDS:
        return f"{value * 100:.2f}%"
    return str(value)


def to_xlsx(report: StatsReport, generated_at: datetime) -> bytes:
    """Sheet 统计 (figures; rates in percent format) and sheet 口径说明 (formulas)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook always has one sheet
    sheet.title = "统计"
    sheet.append([_title(report)])
    sheet["A1"].font = Font(bold=True)
    head = headers(report)
    sheet.append(head)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True)
    fields = _fields(report)
    for cells in _rows(report):
        sheet.append(cells)
        for index, name in enumerate(fields, start=3):
            cell = sheet.cell(row=sheet.max_row, column=index)
            if name in RATE_FIELDS:
                cell.number_format = "0.00%"
        for column in (1, 2):  # text: never a formula, whatever the name looks like
            sheet.cell(row=sheet.max_row, column=column).data_type = "s"
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "C3"
    sheet.column_dimensions["A"].width = 18
    for index in range(3, len(head) + 1):
        sheet.column_dimensions[get_column_letter(index)].width = 12
    _formula_sheet(book, report, generated_at)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _formula_sheet(book: Workbook, report: StatsReport, generated_at: datetime) -> None:
    sheet = book.create_sheet("口径说明")
    q = report.query
    meta = [
        ("统计区间", f"{q.start.isoformat()} 至 {q.end.isoformat()}（含首尾两日，按当地日界）"),
        ("时区", report.time_zone),
        ("统计范围", f"地区编码 {report.scope} 及其下级"),
        ("分组", DIMENSION_LABELS[q.by]),
        ("服务水平阈值", f"{q.threshold_s} 秒"),
        ("生成时间", generated_at.isoformat(timespec="seconds")),
    ]
    for name, value in meta:
        sheet.append([name, value])
    sheet.append([])
    sheet.append(["指标", "字段", "分子", "分母", "说明"])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for formula in FORMULAS:
        sheet.append(
            [
                formula.name,
                formula.key,
                formula.numerator.replace("N秒", f"{q.threshold_s}秒"),
                formula.denominator,
                formula.note,
            ]
        )
    for row in sheet.iter_rows():
        for cell in row:
            cell.data_type = "s" if cell.value is not None else cell.data_type
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for letter, width in zip("ABCDE", (14, 28, 48, 36, 56), strict=True):
        sheet.column_dimensions[letter].width = width
