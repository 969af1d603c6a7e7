"""The trace replays by trace prefix (``02`` -> ``02-queue-abandon-ringnoanswer``)."""

from __future__ import annotations

from callcenter.pbxsim.scripted import LabReplay, PlatformOnly, Variant
from callcenter.pbxsim.scripted_calls import (
    AbandonEmptyQueue,
    AbandonRingNoAnswer,
    FiveCallers,
    IvrHangup,
    LabAnsweredCall,
    LabAnsweredCallVariant,
    OddCallerNames,
    Overflow,
)
from callcenter.pbxsim.scripted_transfers import (
    AttendedTransferToSeat,
    BlindTransferToSeat,
    RedirectTo12345,
    SupervisedCall,
)

__all__ = ["LAB_REPLAYS"]

VARIANT_13 = Variant(
    systemname="js-node1", timestamp_events=True, channelvars=("HOTLINE_SERVICE", "CDR(userfield)")
)

LAB_REPLAYS: dict[str, LabReplay] = {
    "01": LabReplay("01-ivr-queue-answer-mixmonitor", 1795254061.0, 0, 0, LabAnsweredCall),
    "02": LabReplay("02-queue-abandon-ringnoanswer", 1795254083.0, 2, 4, AbandonRingNoAnswer),
    "02b": LabReplay("02b-queue-abandon-no-members", 1795254108.0, 7, 14, AbandonEmptyQueue),
    "02c": LabReplay("02c-ivr-hangup-before-choice", 1795254128.0, 8, 16, IvrHangup),
    "04": LabReplay("04-redirect-blind-transfer-to-12345", 1795254170.0, 0x0C, 24, RedirectTo12345),
    "04b": LabReplay(
        "04b-blindtransfer-action-to-seat", 1795254198.0, 0x0E, 28, BlindTransferToSeat
    ),
    "04c": LabReplay(
        "04c-atxfer-attended-transfer", 1795254226.0, 0x11, 34, AttendedTransferToSeat
    ),
    "05": LabReplay("05-originate-callback-survey", 1795254262.0, 0x15, 42, PlatformOnly),
    "05b": LabReplay(
        "05b-originate-seat-first-click-to-call", 1795254269.0, 0x16, 44, PlatformOnly
    ),
    "08": LabReplay("08-supervisor-chanspy", 1795254359.0, 0x21, 66, SupervisedCall),
    "09": LabReplay("09-queue-overflow-city-to-province", 1795254391.0, 0x25, 74, Overflow),
    "10": LabReplay("10-queue-positions-five-callers", 1795254420.0, 0x29, 82, FiveCallers),
    "12": LabReplay("12-odd-caller-names", 1795254457.0, 0x33, 102, OddCallerNames),
    "13": LabReplay(
        "13-variant-systemname-timestamp-chanvars",
        1795254484.0,
        0,
        0,
        LabAnsweredCallVariant,
        VARIANT_13,
    ),
}
