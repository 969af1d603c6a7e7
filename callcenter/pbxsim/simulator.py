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
"""

from __future__ import annotations

import random
from pathlib import Path

from callcenter.pbxsim.ami_server import DEFAULT_USERS, AmiServer, AmiUser
from callcenter.pbxsim.call_actions import CallActions
from callcenter.pbxsim.channel_actions import ChannelActions
from callcenter.pbxsim.clock import SimClock
from callcenter.pbxsim.engine import Pbx
from callcenter.pbxsim.model import PbxModel, hotline_lab
from callcenter.pbxsim.originate import OriginateActions
from callcenter.pbxsim.queue_actions import QueueActions
from callcenter.pbxsim.recordings import Recorder
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

    async def start(self) -> int:
        """Listen for AMI (returns the port), start the clock and the callers."""
        port = await self.server.start()
        self.clock.start()
        if self.traffic is not None:
            self.traffic.start()
        return port

    async def stop(self) -> None:
        """Stop the callers and the clock, close every AMI session."""
        if self.traffic is not None:
            self.traffic.stop()
        await self.clock.stop()
        await self.server.close()
