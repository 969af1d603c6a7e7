"""A simulated node configured for a whole province: one queue per city plus the provincial ones.

Queue names follow the province data file (``city-<code>``, ``province``, ``province-duty``,
see ``callcenter/regions/data/330000.yaml``).  Seats are Local-channel interfaces like the
lab's (``Local/80401@agent-phones/n``: ``8`` + city index + seat number; the provincial centre
is ``89xxx``, night duty ``895xx``), with Chinese member names prefixed by the city
(``嘉兴-王芳``, ``省中心-陈静``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.pbxsim.callers import chinese_name
from callcenter.pbxsim.model import Clock, Member, PbxModel, Queue
from callcenter.regions.provinces import ProvinceData

__all__ = ["SeatPlan", "province_model"]

STRATEGIES = frozenset({"rrmemory", "leastrecent", "ringall"})


@dataclass(frozen=True)
class SeatPlan:
    """How many seats each queue has, their wrap-up time and the queues' ring strategy."""

    seats_per_city: int = 2
    city_seats: Mapping[str, int] = field(default_factory=dict)
    """Overrides of ``seats_per_city`` by city code."""
    province_seats: int = 3
    duty_seats: int = 1
    wrapup_s: int = 10
    strategy: str = "rrmemory"
    seed: int = 2260

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, not {self.strategy!r}")

    def seats_of(self, city_code: str) -> int:
        return self.city_seats.get(city_code, self.seats_per_city)


def _short(name: str) -> str:
    """``嘉兴市`` -> ``嘉兴``."""
    return name[:-1] if name.endswith("市") and len(name) > 2 else name


def province_model(
    province: ProvinceData,
    plan: SeatPlan | None = None,
    *,
    clock: Clock | None = None,
    systemname: str | None = None,
) -> PbxModel:
    """The queues and seats of a provincial node (cities in file order, then the provincial)."""
    plan = plan or SeatPlan()
    model = PbxModel(systemname=systemname, clock=clock or time.time)
    names = random.Random(plan.seed)  # noqa: S311 -- member names, not secrets
    login = int(model.clock())

    def queue(name: str, label: str, prefix: str, count: int) -> Queue:
        members = [
            Member(
                name,
                f"{label}-{chinese_name(names)}",
                f"Local/{prefix}{n:02d}@agent-phones/n",
                login_time=login,
                wrapuptime=plan.wrapup_s,
            )
            for n in range(1, count + 1)
        ]
        return model.add_queue(Queue(name, strategy=plan.strategy, members=members))

    for index, city in enumerate(province.cities, start=1):
        seats = plan.seats_of(city.code)
        queue(province.city_queue_name(city.code), _short(city.name), f"8{index:02d}", seats)
    queue(province.queues.provincial.name, "省中心", "890", plan.province_seats)
    queue(province.queues.duty.name, "省值班", "895", plan.duty_seats)
    return model
