"""The simulator's composition root: one object the demo, tests and benchmarks start and stop.

    sim = PbxSimulator(model=province_model(load_province(province_file("330000"))),
                       traffic=TrafficConfig(seed=7, speed=10), recordings_dir=Path("rec"))
    port = await sim.start()          # AMI on 127.0.0.1:port, callers start arriving
    ...
    print(sim.stats.table())          # offered / answered / abandoned / overflowed per city
    await sim.stop()

Without ``traffic`` it is a quiet PBX that still answers every action (Originate, Hangup,
QueuePause...).  The AMI server's fault controls (drop, silence, restart, raw frames) are on
:attr:`PbxSimulator.server`.

:meth:`PbxSimulator.place_call` places one scripted caller through the dialplan contract (see
:mod:`callcenter.pbxsim.scripts`), with or without generated traffic around it.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from callcenter.pbxsim.ami_server import DEFAULT_USERS, AmiServer, AmiUser
from callcenter.pbxsim.call_actions import CallActions
from callcenter.pbxsim.callers import CallerIdentity
from callcenter.pbxsim.channel_actions import ChannelActions
from callcenter.pbxsim.clock import SimClock
from callcenter.pbxsim.engine import Pbx
from callcenter.pbxsim.model import PbxModel, hotline_lab
from callcenter.pbxsim.originate import OriginateActions
from callcenter.pbxsim.queue_actions import QueueActions
from callcenter.pbxsim.recordings import Recorder
from callcenter.pbxsim.scripts import CallScript, PlacedCall
from callcenter.pbxsim.steps import CallSteps, EventOptions
from callcenter.pbxsim.traffic import TrafficGenerator
from callcenter.pbxsim.workload import TrafficConfig, TrafficStats

__all__ = ["PbxSimulator", "install_actions"]


def install_actions(pbx: Pbx) -> None:
    """Register every action handler of the simulator on ``pbx.server``."""
    QueueActions(pbx.server).install()
    ChannelActions(pbx.server).install()
    CallActions(pbx).install()
    OriginateActions(pbx).install()


class PbxSimulator:
    """AMI server + virtual clock + action handlers (+ call generator when ``traffic``)."""

    def __init__(
        self,
        *,
        model: PbxModel | None = None,
        traffic: TrafficConfig | None = None,
        clock: SimClock | None = None,
        options: EventOptions | None = None,
        recordings_dir: Path | None = None,
        audio_dir: Path | None = None,
        users: tuple[AmiUser, ...] = DEFAULT_USERS,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        seed = traffic.seed if traffic is not None and seed is None else seed
        speed = traffic.speed if traffic is not None else 1.0
        self.clock = clock or SimClock(start=traffic.start if traffic else None, speed=speed)
        self.model = model or hotline_lab(clock=self.clock.now)
        self.model.clock = self.clock.now
        self._log_members_in()
        self.model.rng = random.Random(f"{seed}-ids") if seed is not None else None  # noqa: S311
        self.server = AmiServer(self.model, users=users, host=host, port=port)
        recorder = Recorder(recordings_dir, audio_dir) if recordings_dir is not None else None
        self.pbx = Pbx(
            server=self.server,
            clock=self.clock,
            steps=CallSteps(self.server, options),
            rng=random.Random(seed),  # noqa: S311 -- simulation, not security
            recorder=recorder,
        )
        install_actions(self.pbx)
        self.traffic = TrafficGenerator(self.pbx, traffic) if traffic is not None else None
        self._placing: TrafficGenerator | None = None
        self._callers_started = False

    def _log_members_in(self) -> None:
        """Seats log in when the PBX starts, on its clock: a model built beforehand stamped
        them with the wall clock, which would make two runs under one seed differ."""
        login = int(self.clock.now())
        for queue in self.model.queues.values():
            for member in queue.members:
                member.login_time = login

    @property
    def stats(self) -> TrafficStats:
        """Per-city counters of the generated calls (empty without traffic)."""
        return self.traffic.stats if self.traffic is not None else TrafficStats()

    def place_call(
        self,
        city_code: str,
        caller_number: str,
        caller_name: str = "",
        script: CallScript | None = None,
        *,
        fastagi_url: str | None = None,
    ) -> PlacedCall:
        """Start one scripted inbound call on ``city_code``'s 12348 line; watch the result.

        The FastAGI server is the traffic's ``fastagi_url``; a simulator without traffic needs
        ``fastagi_url`` here (its seats then always answer, after ``answer_delay_s``).
        Raises ValueError for a city without a line in the model or a missing URL.
        """
        who = CallerIdentity(caller_number, caller_name, None)
        call = self._generator_for(fastagi_url).place(city_code, who, script or CallScript())
        return PlacedCall(call)

    def _generator_for(self, fastagi_url: str | None) -> TrafficGenerator:
        if self.traffic is not None:
            url = self.traffic.config.fastagi_url
            if url is None or (fastagi_url is not None and fastagi_url != url):
                raise ValueError(
                    "place_call: this simulator's traffic runs without that FastAGI server; "
                    "set TrafficConfig.fastagi_url instead"
                )
            return self.traffic
        if fastagi_url is None and self._placing is None:
            raise ValueError("place_call needs fastagi_url on a simulator without traffic")
        if self._placing is None or (
            fastagi_url is not None and self._placing.config.fastagi_url != fastagi_url
        ):
            config = TrafficConfig(calls_per_hour=0.0, speed=self.clock.speed, no_answer_share=0.0)
            config = dataclasses.replace(config, fastagi_url=fastagi_url)
            self._placing = TrafficGenerator(self.pbx, config)
        return self._placing

    async def start(self, *, callers: bool = True) -> int:
        """Listen for AMI (returns the port), start the clock and the callers.

        ``callers=False`` only listens: a test can connect its bridge first and then call
        ``start_callers``, so no call lives and dies before anyone watches.
        """
        port = await self.server.start()
        if callers:
            self.start_callers()
        return port

    def start_callers(self) -> None:
        """Start the virtual clock and the call generator (idempotent)."""
        self.clock.start()
        if self.traffic is not None and not self._callers_started:
            self._callers_started = True
            self.traffic.start()

    async def stop(self) -> None:
        """Stop the callers and the clock, close every AMI session."""
        if self.traffic is not None:
            self.traffic.stop()
        try:
            await self.clock.stop()
        finally:  # even when stopping the callers was interrupted: never leave the port open
            await self.server.close()
