"""Built-in PBX simulator: speaks real AMI over TCP so the platform runs without Asterisk."""

from callcenter.pbxsim.ami_server import AmiServer, AmiSession, AmiUser
from callcenter.pbxsim.model import Channel, Member, PbxModel, Queue, QueueEntry, hotline_lab

__all__ = [
    "AmiServer",
    "AmiSession",
    "AmiUser",
    "Channel",
    "Member",
    "PbxModel",
    "Queue",
    "QueueEntry",
    "hotline_lab",
]
