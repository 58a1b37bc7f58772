"""The ordered chain of stages for one direction of one connection (sans-IO).

Toxics apply in the order they were added: a new stage goes at the end, nearest the
destination. Everything a stage holds is newer than what the stages after it hold and
older than what the stages before it hold, so a removed stage's contents are appended to
the *next* stage (or handed out) and the byte order is kept.
"""

from __future__ import annotations

from harness.netem.stages import Fault, Item, Stage


class Pipeline:
    """Stages between a source socket and a destination socket."""

    def __init__(self) -> None:
        self._stages: list[Stage] = []

    def __len__(self) -> int:
        return len(self._stages)

    def names(self) -> list[str]:
        """Names of the stages, in pipeline order."""
        return [s.name for s in self._stages]

    def add(self, stage: Stage) -> None:
        """Append a stage at the destination end."""
        self._stages.append(stage)

    def remove(self, name: str, now: float) -> list[Item]:
        """Remove the stage called ``name``; return the items that now leave the pipeline.

        The stage's held items move on to the next stage, so nothing is lost.
        """
        index = self.names().index(name)
        stage = self._stages.pop(index)
        held = stage.drain()
        if index == len(self._stages):
            return held
        nxt = self._stages[index]
        for item in held:
            nxt.feed(item, now)
        return self._pump_from(index, now)

    def feed(self, item: Item, now: float) -> list[Item]:
        """Put one item in at the source end; return the items that leave now."""
        if not self._stages:
            return [item]
        self._stages[0].feed(item, now)
        return self.pump(now)

    def pump(self, now: float) -> list[Item]:
        """Move everything that is due through the stages; return what leaves."""
        return self._pump_from(0, now)

    def _pump_from(self, start: int, now: float) -> list[Item]:
        carried: list[Item] = []
        for stage in self._stages[start:]:
            for item in carried:
                stage.feed(item, now)
            carried = stage.emit(now)
        return carried

    def deadline(self) -> float | None:
        """The earliest time any stage has something new to do."""
        times = [t for t in (s.deadline() for s in self._stages) if t is not None]
        return min(times) if times else None

    def fault(self, now: float) -> Fault | None:
        """The first fault that is due at ``now``, in pipeline order."""
        for stage in self._stages:
            fault = stage.fault(now)
            if fault is not None:
                return fault
        return None

    def held(self) -> int:
        """Bytes held by all stages together."""
        return sum(s.held() for s in self._stages)
