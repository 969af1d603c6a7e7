"""How the demo's simulated callers answer the default 12348 flow (``flows/12348.yaml``).

The simulator knows nothing of flows: it plays input scripts. These scripts follow the default
flow's menus (language, then the main menu, its level-2 menus and the speech question), so the
demo shows every kind of caller: keys, keyword speech (tones the test model hears as 欠薪 /
离婚 / 自杀), other sounds falling back to keys, invalid keys and silence reaching a person,
hang-ups mid-menu, English callers. After hours the key after the language choice answers the
after-hours menu instead (1 callback booking, 2 duty queue), as a real caller's would.
"""

from __future__ import annotations

from typing import Final

_SAY = "say:sil:0.3,{}:0.8,sil:0.6"

DEFAULT_FLOW_CALLERS: Final[tuple[tuple[float, tuple[str, ...]], ...]] = (
    (10.0, ("1", "1", _SAY.format("离婚"))),  # 法律咨询, said: 离婚 → consultation queue
    (5.0, ("1", "1", _SAY.format("欠薪"))),  # said: 欠薪 → green channel
    (12.0, ("1", "1", "say:sil:0.3,440hz:1.0,sil:0.6", "1")),  # not a keyword → key menu
    (5.0, ("1", "2", "1")),  # 法律援助 → 农民工欠薪求助绿色通道
    (15.0, ("1", "2", "2")),  # 法律援助
    (15.0, ("1", "3")),  # 人民调解
    (10.0, ("1", "4")),  # 公证·司法鉴定·仲裁
    (8.0, ("1", "5")),  # 投诉建议
    (6.0, ("1", "0")),  # 人工
    (3.0, ("",)),  # silence everywhere: default language, then a person
    (2.0, ("1", "9", "8", "7")),  # invalid keys three times: a person
    (5.0, ("1", "hangup")),  # hangs up in the main menu
    (3.0, ("2", "2", "2")),  # English, legal aid
    (0.5, ("1", "1", _SAY.format("自杀"))),  # crisis: a person at once, risk alert
)
"""``TrafficConfig.ivr_scripts`` for the default flow: (weight, inputs)."""

QUEUE_EXIT_SHARE: Final = 0.05
"""Share of queued callers who take the virtual-hold offer (press 1, get a callback)."""
SURVEY_SHARE: Final = 0.6
"""Share of callers who stay for the satisfaction survey after the seat hangs up."""
