"""Built-in PBX simulator: speaks real AMI over TCP so the platform runs without Asterisk.

Start here: :class:`PbxSimulator` (AMI server + action handlers + call generator), configured by
:func:`province_model` / :class:`SeatPlan` (queues and seats of a province) and
:class:`TrafficConfig` (callers, seats' behaviour, speed, seed).
"""

from callcenter.pbxsim.ami_server import AmiServer, AmiSession, AmiUser
from callcenter.pbxsim.clock import SimClock
from callcenter.pbxsim.model import Channel, Member, PbxModel, Queue, QueueEntry, hotline_lab
from callcenter.pbxsim.province import SeatPlan, province_model
from callcenter.pbxsim.simulator import PbxSimulator
from callcenter.pbxsim.steps import EventOptions
from callcenter.pbxsim.workload import TrafficConfig, TrafficStats

__all__ = [
    "AmiServer",
    "AmiSession",
    "AmiUser",
    "Channel",
    "EventOptions",
    "Member",
    "PbxModel",
    "PbxSimulator",
    "Queue",
    "QueueEntry",
    "SeatPlan",
    "SimClock",
    "TrafficConfig",
    "TrafficStats",
    "hotline_lab",
    "province_model",
]
