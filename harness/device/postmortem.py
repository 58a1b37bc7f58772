"""The ESP8266 core's crash report on the console, as a wait for READY watches for it.

After an exception, a software watchdog, ``abort()`` or a failed ``assert``, the core
prints a report (``core_esp8266_postmortem.cpp``): a reason line such as ``Exception (29):``
or ``Soft WDT reset``, then the stack dump between ``>>>stack>>>`` and ``<<<stack<<<``, and
the chip reboots. A sketch that crashes while it boots does that forever, so a harness that
only waits for READY would wait out its whole timeout and then report "no READY".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["BOOT_LOOP", "CrashWatch", "crash_reasons", "reason_of"]

#: Reports during one bring-up that make it a boot loop: one crash may be a fluke the
#: reboot cures; a second one means READY will not come.
BOOT_LOOP = 2

# The reason lines the core prints before the stack dump (core_esp8266_postmortem.cpp).
_REASON = re.compile(
    r"^(Exception \(\d+\)|Soft WDT reset|Panic |Unhandled C\+\+ exception|Abort called"
    r"|Stack smashing detected|Stack overflow detected|Generic Reset|User exception)"
)
_STACK = ">>>stack>>>"
_GENERIC = "User exception"


def reason_of(line: str) -> str | None:
    """The crash's reason if ``line`` is the reason line of a report (``Exception (29)``)."""
    line = line.strip()
    return line.rstrip(":") if _REASON.match(line) else None


class CrashWatch:
    """Fed console lines in order; says why once ``limit`` crash reports have gone by (never
    with ``limit=None``).

    Call it with each line's text: None while all is well, else one line for the error.
    """

    def __init__(self, limit: int | None = BOOT_LOOP) -> None:
        self.limit = limit
        #: The reason of each report seen, in order ("a crash report" for one whose reason
        #: line the watch does not know).
        self.reasons: list[str] = []
        self._pending = ""

    @property
    def crashes(self) -> int:
        """Reports seen so far."""
        return len(self.reasons)

    @property
    def reason(self) -> str:
        """The latest report's reason ("" before the first)."""
        return self.reasons[-1] if self.reasons else ""

    def __call__(self, text: str) -> str | None:
        text = text.strip()
        reason = reason_of(text)
        if reason is not None:
            # The first one names it (a soft watchdog's report goes on with "Exception (4):"),
            # unless it is the generic line panic(), abort() and assert() print first.
            if not self._pending or self._pending.startswith(_GENERIC):
                self._pending = reason
        elif text.startswith(_STACK):
            self.reasons.append(self._pending or "a crash report")
            self._pending = ""
            if self.limit is not None and self.crashes >= self.limit:
                return (f"the firmware crashed {self.crashes} times while booting (a boot "
                        f"loop): {self.reason}; its report is in the console tail")
        return None


def crash_reasons(lines: Iterable[str]) -> list[str]:
    """The reason of each crash report in ``lines``, in order."""
    watch = CrashWatch(limit=None)
    for text in lines:
        watch(text)
    return watch.reasons
