"""The closed vocabularies of a ticket: stable codes in the database, Chinese labels for people.

Codes never change once tickets carry them (statistics and exports group by them); labels may
be reworded freely. The service catalogue follows the 12348 public legal-service catalogue.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"
    HOTLINE_12345 = "12345"
    WEB = "web"


class Category(StrEnum):
    """The 12348 service catalogue."""

    LEGAL_CONSULTATION = "legal_consultation"
    LEGAL_AID = "legal_aid"
    MEDIATION = "mediation"
    NOTARIZATION = "notarization"
    JUDICIAL_EXPERTISE = "judicial_expertise"
    LAWYER_SERVICE = "lawyer_service"
    ARBITRATION = "arbitration"
    LEGAL_PUBLICITY = "legal_publicity"
    COMPLAINT_SUGGESTION = "complaint_suggestion"


class RequestType(StrEnum):
    CONSULTATION = "consultation"
    HELP = "help"
    COMPLAINT = "complaint"
    REPORT = "report"
    SUGGESTION = "suggestion"


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class Satisfaction(StrEnum):
    """The five levels of a return visit (回访)."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"


LABELS: dict[StrEnum, str] = {
    Channel.PHONE: "电话",
    Channel.HOTLINE_12345: "12345转办",
    Channel.WEB: "网络",
    Category.LEGAL_CONSULTATION: "法律咨询",
    Category.LEGAL_AID: "法律援助",
    Category.MEDIATION: "人民调解",
    Category.NOTARIZATION: "公证",
    Category.JUDICIAL_EXPERTISE: "司法鉴定",
    Category.LAWYER_SERVICE: "律师服务",
    Category.ARBITRATION: "仲裁",
    Category.LEGAL_PUBLICITY: "法治宣传",
    Category.COMPLAINT_SUGGESTION: "投诉建议",
    RequestType.CONSULTATION: "咨询",
    RequestType.HELP: "求助",
    RequestType.COMPLAINT: "投诉",
    RequestType.REPORT: "举报",
    RequestType.SUGGESTION: "建议",
    Urgency.NORMAL: "一般",
    Urgency.URGENT: "紧急",
    Urgency.EMERGENCY: "特急",
    Satisfaction.VERY_SATISFIED: "非常满意",
    Satisfaction.SATISFIED: "满意",
    Satisfaction.BASICALLY_SATISFIED: "基本满意",
    Satisfaction.DISSATISFIED: "不满意",
    Satisfaction.VERY_DISSATISFIED: "非常不满意",
}


def label(code: StrEnum) -> str:
    """The Chinese label of a code (every member of the enums above has one)."""
    return LABELS[code]


def sql_in(enum: type[StrEnum]) -> str:
    """``"col IN ('a', 'b')"`` body for a CHECK constraint listing every code of ``enum``."""
    return ", ".join(f"'{member.value}'" for member in enum)
