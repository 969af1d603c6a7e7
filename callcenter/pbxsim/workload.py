"""What the call generator simulates (:class:`TrafficConfig`) and what it counts
(:class:`TrafficStats`).

Durations are simulated seconds; ranges are ``(low, high)`` of a uniform draw.  Rates are
arrivals per hour per city (a Poisson process: exponential gaps).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.pbxsim.agi_caller import AgiCaller

__all__ = [
    "DEFAULT_TRANSFER_TRUNKS",
    "SERVICES",
    "CityStats",
    "Range",
    "TrafficConfig",
    "TrafficStats",
    "service_of",
]

Range = tuple[float, float]

SERVICES: tuple[tuple[str, str, str, int], ...] = (
    ("1", "legal-consult", "法律咨询", 40),
    ("2", "legal-aid", "法律援助", 20),
    ("3", "mediation", "人民调解", 10),
    ("4", "notary", "公证", 6),
    ("5", "forensic", "司法鉴定", 3),
    ("6", "lawyer", "律师服务", 8),
    ("7", "arbitration", "仲裁", 3),
    ("8", "wage-arrears", "农民工欠薪求助", 6),
    ("9", "complaint", "投诉建议", 4),
)
"""IVR key, service id, name, weight (share of callers choosing it)."""


DEFAULT_TRANSFER_TRUNKS: Mapping[str, str] = {
    "12345": "trunk-gov",
    "110": "trunk-emergency",
    "119": "trunk-emergency",
    "120": "trunk-emergency",
}
"""The default flow's transfer targets and the trunk each one is dialled on."""


def service_of(digit: str) -> str:
    """The service id an IVR key selects (``legal-consult`` for unknown keys)."""
    return next((service for key, service, _, _ in SERVICES if key == digit), "legal-consult")


@dataclass(frozen=True)
class TrafficConfig:
    """Callers, seats' behaviour and queue timing of one simulated run."""

    seed: int = 12348
    speed: float | None = 1.0
    """Simulated seconds per real second; None = as fast as possible."""
    start: float | None = None
    """Virtual epoch at start (None = now); fix it for runs that must repeat byte for byte."""
    province_code: str = "330000"
    calls_per_hour: float = 60.0
    city_rates: Mapping[str, float] = field(default_factory=dict)
    """Arrivals per hour by city code, overriding ``calls_per_hour``."""
    arrivals_for_s: float | None = None
    """Stop new arrivals after this long (calls in progress still finish)."""
    max_calls: int | None = None
    ivr_s: Range = (3.0, 8.0)
    ivr_hangup_share: float = 0.03
    patience_s: Range = (20.0, 240.0)
    answer_delay_s: Range = (1.0, 5.0)
    no_answer_share: float = 0.1
    """Share of rings a seat lets run into the ring timeout (AgentRingNoAnswer)."""
    ring_timeout_s: float = 15.0
    retry_s: float = 1.0
    talk_s: Range = (30.0, 300.0)
    agent_hangup_share: float = 0.2
    city_timeout_s: float = 45.0
    """Wait in the city queue before overflowing to the provincial queue."""
    province_timeout_s: float = 600.0
    other_province_share: float = 0.1
    landline_share: float = 0.15
    fastagi_url: str | None = None
    """``agi://host:port/ivr``: run the IVR on that FastAGI server instead of the built-in
    menu, following ``docs/dialplan-contract.md`` (see :mod:`callcenter.pbxsim.scripts`)."""
    node_name: str | None = None
    """``node=`` of the FastAGI requests; None: left out (the platform's default node)."""
    transfer_trunks: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_TRANSFER_TRUNKS)
    )
    """``hotline-transfer`` extensions (``HOTLINE_TRANSFER`` values) and the trunk each dials."""
    ivr_scripts: tuple[tuple[float, tuple[str, ...]], ...] = ()
    """Weighted input scripts for the main FastAGI entry (``(weight, ("2", "1"))``, inputs as
    :class:`~callcenter.pbxsim.agi_caller.AgiCaller` takes them: keys, ``""``, ``"hangup"``,
    ``"say:<spec>"`` for the speech menu, the key of a transfer target...).  Empty: each
    caller answers every GET DATA with its service key (and ``ivr_hangup_share`` applies)."""
    queue_exit_share: float = 0.0
    """Share of callers in a contract queue who press the exit key (virtual hold)."""
    queue_exit_after_s: Range = (20.0, 90.0)
    virtual_hold_inputs: tuple[str, ...] = ("1",)
    """What those callers answer in the ``virtual_hold`` entry."""
    survey_share: float = 0.0
    """Share of callers who stay for the survey when the seat hangs up (the others hang up)."""
    survey_answers: tuple[tuple[float, str], ...] = (
        (50.0, "1"), (30.0, "2"), (12.0, "3"), (5.0, "4"), (3.0, "5"),
    )  # fmt: skip
    """Weighted survey keys (1 非常满意 ... 5 非常不满意)."""
    trunk_channels: bool = True
    """``PJSIP/trunk-…`` caller channels (production); False: the lab's ``Local/12348@…;2``."""

    def __post_init__(self) -> None:
        for name in ("ivr_hangup_share", "queue_exit_share", "survey_share", "no_answer_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TrafficConfig.{name} must be within 0..1, not {value}")
        for table in ("ivr_scripts", "survey_answers"):
            weights = [weight for weight, _ in getattr(self, table)]
            if any(w < 0 for w in weights) or (weights and sum(weights) <= 0):
                raise ValueError(f"TrafficConfig.{table} needs non-negative weights, some > 0")
        for _, inputs in self.ivr_scripts:
            AgiCaller(inputs=inputs)  # a bad input fails now, not in the middle of a run
        AgiCaller(inputs=self.virtual_hold_inputs)

    def rate_of(self, city_code: str) -> float:
        return self.city_rates.get(city_code, self.calls_per_hour)

    def main_inputs(self, rng: random.Random) -> tuple[str, ...] | None:
        """A drawn input script for the main entry, or None (the classic one-key caller)."""
        if not self.ivr_scripts:
            return None
        weights = [weight for weight, _ in self.ivr_scripts]
        return rng.choices([inputs for _, inputs in self.ivr_scripts], weights)[0]

    def survey_caller(self, rng: random.Random) -> AgiCaller | None:
        """A generated caller's survey answer; None: the caller hangs up with the seat (no
        survey session, today's mix)."""
        if rng.random() >= self.survey_share:
            return None
        weights = [weight for weight, _ in self.survey_answers]
        key = rng.choices([answer for _, answer in self.survey_answers], weights)[0]
        return AgiCaller(inputs=[key])


@dataclass
class CityStats:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0
    ivr_hangups: int = 0
    transferred: int = 0
    answered_by_province: int = 0
    virtual_holds: int = 0
    surveys: int = 0


@dataclass
class TrafficStats:
    """Counters per city code; a call counts for the city whose line it came in on."""

    cities: dict[str, CityStats] = field(default_factory=dict)
    city_names: dict[str, str] = field(default_factory=dict)
    active: int = 0

    def city(self, code: str) -> CityStats:
        return self.cities.setdefault(code, CityStats())

    def total(self) -> CityStats:
        out = CityStats()
        for stats in self.cities.values():
            for name in vars(out):
                setattr(out, name, getattr(out, name) + getattr(stats, name))
        return out

    def table(self) -> str:
        """A plain-text table for the demo and the benchmarks."""
        head = f"{'city':<10}{'offered':>8}{'answered':>9}{'abandoned':>10}{'overflowed':>11}"
        rows = [head]
        for code, stats in sorted(self.cities.items()):
            label = self.city_names.get(code, code)
            rows.append(
                f"{label:<10}{stats.offered:>8}{stats.answered:>9}"
                f"{stats.abandoned:>10}{stats.overflowed:>11}"
            )
        total = self.total()
        rows.append(
            f"{'total':<10}{total.offered:>8}{total.answered:>9}"
            f"{total.abandoned:>10}{total.overflowed:>11}"
        )
        return "\n".join(rows)
