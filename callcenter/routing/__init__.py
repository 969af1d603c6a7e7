"""Call routing: caller's city seat first, overflow to the provincial centre, duty after hours.

Pure domain logic (no database, AMI or web): ``RoutingEngine.decide`` runs on every call.
"""

from callcenter.routing.calendar import BusinessHours, Period, is_business_time, is_working_day
from callcenter.routing.engine import (
    AgentView,
    QueueSnapshot,
    QueueView,
    Reason,
    ReasonCode,
    RoutingDecision,
    RoutingEngine,
    RoutingRequest,
    RoutingSnapshot,
    queue_views,
)
from callcenter.routing.locate import Location, Locator, number_facts
from callcenter.routing.rules import (
    DEFAULT_RULES,
    RoutingRules,
    RulesError,
    load_default_rules,
    load_rules,
    parse_rules,
)

__all__ = [
    "DEFAULT_RULES",
    "AgentView",
    "BusinessHours",
    "Location",
    "Locator",
    "Period",
    "QueueSnapshot",
    "QueueView",
    "Reason",
    "ReasonCode",
    "RoutingDecision",
    "RoutingEngine",
    "RoutingRequest",
    "RoutingRules",
    "RoutingSnapshot",
    "RulesError",
    "is_business_time",
    "is_working_day",
    "load_default_rules",
    "load_rules",
    "number_facts",
    "parse_rules",
    "queue_views",
]
