"""The ESP8266 core's crash report on the console, as a wait for READY watches for it.

After an exception, a software watchdog, ``abort()`` or a failed ``assert``, the core
prints a report (``core_esp8266_postmortem.cpp``): a reason line such as ``Exception (29):``
or ``Soft WDT reset``, then the stack dump between ``>>>stack>>>`` and ``<<<stack<<<``, and
the chip reboots. A sketch that crashes while it boots does that forever, so a harness that
only waits for READY would wait out its whole timeout and then report "no READY".
"""

from __future__ import annotations

import re

__all__ = ["BOOT_LOOP", "CrashWatch", "reason_of"]

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
    """Fed console lines in order; says why once ``limit`` crash reports have gone by.

    Call it with each line's text: None while all is well, else one line for the error.
    """

    def __init__(self, limit: int = BOOT_LOOP) -> None:
        self.limit = limit
        self.crashes = 0
        #: The reason line of the latest report ("" if it had none the watch knows).
        self.reason = ""
        self._pending = ""

    def __call__(self, text: str) -> str | None:
        text = text.strip()
        reason = reason_of(text)
        if reason is not None:
            # The first one names it (a soft watchdog's report goes on with "Exception (4):"),
            # unless it is the generic line panic(), abort() and assert() print first.
            if not self._pending or self._pending.startswith(_GENERIC):
                self._pending = reason
        elif text.startswith(_STACK):
            self.crashes += 1
            self.reason, self._pending = self._pending or "a crash report", ""
            if self.crashes >= self.limit:
                return (f"the firmware crashed {self.crashes} times while booting (a boot "
                        f"loop): {self.reason}; its report is in the console tail")
        return None
