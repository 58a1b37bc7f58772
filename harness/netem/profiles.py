"""Named link profiles: sets of toxics that make a loopback link look like a real one.

>>> with Proxy(upstream=(dev.ip, dev.port), seed=1) as proxy:    # doctest: +SKIP
...     apply_profile(proxy, "wifi")

The ``wifi`` profile is an ESP8266 on a quiet 2.4 GHz network, per direction: a rate cap of
about 1 MB/s, a one-way delay with jitter (a round trip of a few ms), and an occasional
stall. TCP retransmits, so on a stream a lost burst of frames is not a hole but a pause
until the retransmission gets through: that is how it is modelled (:class:`Stalls`). The
sources of the figures are in docs/netem.md ("Profiles").
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.netem.proxy import Direction, Proxy
from harness.netem.toxics import Bandwidth, Latency, Stalls, Toxic


@dataclass(frozen=True)
class Profile:
    """A link's shape, applied the same way in both directions."""

    name: str
    #: Rate cap per direction, bytes per second.
    bytes_per_s: float
    #: One-way delay and its jitter (uniform, ±), ms: the round trip is twice the delay.
    latency_ms: float
    jitter_ms: float
    #: Mean gap between stalls and a stall's length, ms (per direction).
    stall_every_ms: float
    stall_ms: float

    def toxics(self) -> list[Toxic]:
        """The toxics, in pipeline order: stalls before the rate cap, so a stall's airtime
        is lost to every stream alike (after it, the cap drains what waited at the link's
        rate, not in a burst); then the delay."""
        return [
            Stalls(every_ms=self.stall_every_ms, ms=self.stall_ms),
            Bandwidth(bytes_per_s=self.bytes_per_s),
            Latency(ms=self.latency_ms, jitter_ms=self.jitter_ms),
        ]

    def describe(self) -> str:
        """One line with the parameters."""
        return (f"{self.name}: {self.bytes_per_s / 1e6:g} MB/s each way, one-way delay "
                f"{self.latency_ms:g} ± {self.jitter_ms:g} ms, a {self.stall_ms:g} ms stall "
                f"every {self.stall_every_ms / 1000:g} s on average (each way)")


PROFILES: dict[str, Profile] = {
    "wifi": Profile(
        name="wifi",
        bytes_per_s=1.0e6,
        latency_ms=1.5,
        jitter_ms=1.0,
        stall_every_ms=2000.0,
        stall_ms=30.0,
    ),
}


def apply_profile(proxy: Proxy, profile: str | Profile, *,
                  direction: Direction = "both") -> list[str]:
    """Add ``profile``'s toxics to ``proxy`` (each direction gets its own, so their
    randomness is independent); returns the names of the installed toxics. KeyError for an
    unknown profile name."""
    if isinstance(profile, str):
        try:
            profile = PROFILES[profile]
        except KeyError:
            raise KeyError(f"no netem profile {profile!r} (known: "
                           f"{', '.join(PROFILES)})") from None
    directions: list[Direction] = (["upstream", "downstream"] if direction == "both"
                                   else [direction])
    return [proxy.add(toxic, direction=d) for d in directions for toxic in profile.toxics()]
