"""The call generator: Poisson arrivals per city, each caller a simulated process.

Every city whose queue (``city-<code>``) exists in the model gets an arrival process with
exponential gaps (rate from :class:`TrafficConfig`).  Each arrival draws a caller identity
(:mod:`callcenter.pbxsim.callers`) and an IVR key, and runs an
:class:`~callcenter.pbxsim.inbound.InboundCall`.  All randomness comes from one
``random.Random(seed)`` and all processes run on the deterministic :class:`SimClock`, so a seed
gives the same AMI event sequence every time (as long as no AMI action interferes).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

from callcenter.pbxsim.callers import CallerIdentity, make_caller
from callcenter.pbxsim.engine import Pbx
from callcenter.pbxsim.inbound import InboundCall, Line, TrafficContext
from callcenter.pbxsim.queueing import SeatBoard
from callcenter.pbxsim.scripts import CallScript
from callcenter.pbxsim.workload import SERVICES, TrafficConfig, TrafficStats
from callcenter.regions.provinces import ProvinceData, RegionEntry, load_province, province_file

__all__ = ["TrafficGenerator"]

log = logging.getLogger(__name__)


class TrafficGenerator:
    """Generates inbound calls on a :class:`~callcenter.pbxsim.engine.Pbx`."""

    def __init__(
        self, pbx: Pbx, config: TrafficConfig, province: ProvinceData | None = None
    ) -> None:
        self.pbx = pbx
        self.config = config
        self.province = province or load_province(province_file(config.province_code))
        self.rng = random.Random(config.seed)  # noqa: S311 -- simulation, not security
        self.stats = TrafficStats(city_names={c.code: c.name for c in self.province.cities})
        self.board = SeatBoard()
        counter = itertools.count()
        self.ctx = TrafficContext(
            config, self.board, self.rng, self.stats.cities, lambda: next(counter)
        )
        self.cities = [c for c in self.province.cities if self._line(c).queue in pbx.model.queues]
        self.live: dict[str, InboundCall] = {}
        """Calls in progress by the caller's Uniqueid."""
        self._started = 0
        self._arrivals_open = 0
        self._done = asyncio.Event()
        self._stopped = False

    def _line(self, city: RegionEntry) -> Line:
        overflow = self.province.queues.provincial.name
        return Line(city.code, self.province.city_queue_name(city.code), overflow)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start one arrival process per city (on the simulator's clock)."""
        self._done.clear()
        for city in self.cities:
            self.stats.city(city.code)
            self._arrivals_open += 1
            self.pbx.clock.spawn(self._arrivals(city), name=f"arrivals {city.code}")
        if not self.cities:
            self._done.set()

    def stop(self) -> None:
        """No new callers (calls in progress go on until the clock stops)."""
        self._stopped = True

    async def wait_finished(self) -> None:
        """Until arrivals are over (``arrivals_for_s`` / ``max_calls``) and every call ended."""
        await self._done.wait()

    # ------------------------------------------------------------------ processes

    async def _arrivals(self, city: RegionEntry) -> None:
        rate = self.config.rate_of(city.code) / 3600.0
        limit = self.config.arrivals_for_s
        end = self.pbx.clock.now() + limit if limit is not None else float("inf")
        try:
            while rate > 0:
                gap = self.rng.expovariate(rate)
                if self.pbx.clock.now() + gap > end:
                    break  # the next caller would come after the end of arrivals
                await self.pbx.clock.sleep(gap)
                if self._closed():
                    break
                self._start_call(city)
        finally:
            self._arrivals_open -= 1
            self._check_done()

    def _closed(self) -> bool:
        limit = self.config.max_calls
        return self._stopped or (limit is not None and self._started >= limit)

    def _start_call(self, city: RegionEntry) -> None:
        config = self.config
        who = make_caller(
            self.rng,
            city.code,
            city.area_code,
            other_province_share=config.other_province_share,
            landline_share=config.landline_share,
        )
        digit = self.rng.choices([s[0] for s in SERVICES], [s[3] for s in SERVICES])[0]
        self._launch(InboundCall(self.pbx, self.ctx, self._line(city), who, digit))

    def place(self, city_code: str, who: CallerIdentity, script: CallScript) -> InboundCall:
        """Start one scripted call on ``city_code``'s line (outside the arrival processes)."""
        city = next((c for c in self.cities if c.code == city_code), None)
        if city is None:
            known = ", ".join(c.code for c in self.cities) or "none"
            raise ValueError(f"no 12348 line for city {city_code!r} in this PBX (lines: {known})")
        if self._arrivals_open == 0 and self.stats.active == 0:
            self._done.clear()
        self.stats.city(city.code)
        call = InboundCall(self.pbx, self.ctx, self._line(city), who, "0", script)
        self._launch(call)
        return call

    def _launch(self, call: InboundCall) -> None:
        self._started += 1
        self.stats.active += 1
        self.live[call.caller.uniqueid] = call
        task = call.start(f"call {call.caller.name}")
        task.add_done_callback(lambda _: self._call_ended(call))

    def _call_ended(self, call: InboundCall) -> None:
        self.stats.active -= 1
        self.live.pop(call.caller.uniqueid, None)
        self._check_done()

    def _check_done(self) -> None:
        if self._arrivals_open == 0 and self.stats.active == 0:
            self._done.set()
