"""LoRaWAN network servers as payload formats: The Things Stack v3 (``ttn``) and
ChirpStack v4 (``chirpstack``) uplink messages, and the payload codecs of the soil
sensors farmers put behind them (``codecs``: Cayenne LPP, Milesight, Decentlab, Dragino).
Pure like the rest of firmware_bridge; docs/formats.md is the user's view."""

from .chirpstack import decode_chirpstack
from .codecs import CODECS
from .ttn import decode_ttn

__all__ = ["CODECS", "decode_chirpstack", "decode_ttn"]
