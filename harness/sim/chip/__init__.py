"""The twin's chip: an ESP8266 on an RFC2217 port that esptool can flash.

See ``docs/twin.md``. The public entry points are :class:`Twin`,
:func:`make_native_image`, :func:`read_native_identity` and
:class:`FirmwareRegistry`.
"""

from .image import make_native_image, read_native_identity
from .registry import FirmwareRegistry
from .twin import Twin

__all__ = ["FirmwareRegistry", "Twin", "make_native_image", "read_native_identity"]
