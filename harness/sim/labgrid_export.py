"""Put running twins into a labgrid farm: an exporter config with one group per twin.

``esp-hil sim --labgrid-exporter`` prints it; ``labgrid-exporter exporter.yaml`` then publishes
each twin's rfc2217 port as a ``NetworkSerialPort`` that a place can match
(docs/board-farm.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from urllib.parse import SplitResult, urlsplit

#: Group name of the twin whose rfc2217 port is N.
GROUP_FORMAT = "twin-{port}"
#: Group names we write: nothing YAML or labgrid's Jinja2 pass would read specially.
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def exporter_config(twins: Mapping[str, str]) -> str:
    """A labgrid exporter YAML config: for each ``group -> rfc2217 URL``, a NetworkSerialPort."""
    # labgrid reads the file as a Jinja2 template whose comments start with "##".
    lines = ["## labgrid exporter config for esp-hil twins (esp-hil sim --labgrid-exporter)"]
    for group, url in sorted(twins.items()):
        if not GROUP_NAME.fullmatch(group):
            raise ValueError(f"not a usable labgrid group name: {group!r}")
        parts = _split(url)
        # JSON strings are YAML strings: no YAML quoting rules to get wrong.
        lines += [
            f"{json.dumps(group)}:",
            "  NetworkSerialPort:",
            f"    host: {json.dumps(parts.hostname)}",
            f"    port: {parts.port}",
            "    speed: 115200",
            '    protocol: "rfc2217"',
        ]
    return "\n".join(lines) + "\n"


def _split(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme != "rfc2217" or not parts.hostname or parts.port is None:
        raise ValueError(f"not an rfc2217://host:port URL: {url}")
    return parts


def twin_groups(urls: Sequence[str] = ()) -> dict[str, str]:
    """``twin-<port> -> URL`` for ``urls``, or for every twin ``esp-hil sim`` runs here."""
    if not urls:
        from harness.sim.serve import running_twins

        urls = list(running_twins())
    return {GROUP_FORMAT.format(port=_split(url).port): url for url in urls}
