"""The keepalive thread of a blocking WiFiSocket: keeps the link alive while nobody calls it.

While the application is not in the socket, PINGs must still go out, the peer's PINGs be
answered, its data acknowledged, a dead peer noticed and a lost connection re-established.
One small daemon thread per socket does that: while the application is idle it waits in
``poll`` like any caller would (an API call wakes it and takes over); while the
application is active it only runs the timers every ``ACTIVE_POLL`` seconds. It holds a
weak reference between rounds, so a forgotten socket is still collected (and closed).
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

__all__ = ["ACTIVE_POLL", "IDLE_MAX_WAIT", "start_keepalive"]

#: The thread's pace while the application uses the link.
ACTIVE_POLL = 0.05
#: The longest single wait while the application is idle.
IDLE_MAX_WAIT = 1.0


class _Keepable(Protocol):
    _stop: threading.Event

    def _keepalive_round(self, seen_calls: int) -> tuple[bool, int, float]: ...

    def _run_callbacks(self) -> None: ...


def start_keepalive(ws: _Keepable) -> threading.Thread:
    """Start the keepalive thread of ``ws`` (it ends when ``ws._stop`` is set)."""
    thread = threading.Thread(
        target=_loop, args=(weakref.ref(ws), ws._stop), name="wifisocket-keepalive", daemon=True
    )
    thread.start()
    return thread


def _loop(ref: weakref.ref[_Keepable], stop: threading.Event) -> None:
    seen_calls = -1
    while not stop.is_set():
        ws = ref()
        if ws is None:
            return
        go_on, seen_calls, pause = ws._keepalive_round(seen_calls)
        ws._run_callbacks()
        del ws
        if not go_on:
            return
        if pause > 0:
            stop.wait(pause)
