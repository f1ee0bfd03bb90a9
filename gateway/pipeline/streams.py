"""Turn a source's byte stream into decoded items, by the source's configured format.

Binary frames go through the resynchronising :class:`firmware_bridge.frame.Deframer`;
line formats (JSON lines, RYLR ``+RCV=`` lines, hex frames, ``<node> <hex>`` Cayenne LPP
lines, rtl_433 JSON events) are split on newlines here with
a bounded line length, so a receiver spewing garbage without newlines cannot grow memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Protocol

from firmware_bridge.cayenne_lpp import decode_lpp_hex_line
from firmware_bridge.frame import Deframer
from firmware_bridge.hexline import decode_frame_hex
from firmware_bridge.native import MAX_LINE as NATIVE_MAX_LINE
from firmware_bridge.native import decode_native
from firmware_bridge.rtl433 import decode_rtl433_line
from firmware_bridge.rylr import decode_rylr_line
from gateway.packet import Packet, Rejection

Item = Packet | Rejection
STREAM_FORMATS: Final = ("frame", "jsonl", "rylr", "frame-hex", "lpp-hex", "rtl433")
MAX_LINE: Final = 8192


class StreamDecoder(Protocol):
    def feed(self, data: bytes) -> list[Item]: ...
    def flush(self) -> list[Item]: ...


class FrameStream:
    def __init__(self) -> None:
        self._deframer = Deframer()

    def feed(self, data: bytes) -> list[Item]:
        return self._deframer.feed(data)

    def flush(self) -> list[Item]:
        flush = getattr(self._deframer, "flush", None)
        return list(flush()) if flush else []


class LineStream:
    """Lines of one format; a line longer than ``max_line`` bytes is refused unread (the
    native format's own limit, so that a recorded MQTT message replays as it was taken
    live; 8 KiB for the others, serial receivers' lines)."""

    def __init__(self, fmt: str, decode_line: Callable[[bytes], Item | None], *,
                 max_line: int = MAX_LINE) -> None:
        self._fmt = fmt
        self._decode = decode_line
        self._max_line = max_line
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        out: list[Item] = []
        if b"\n" in data:
            *lines, rest = bytes(self._buf).split(b"\n")
            self._buf = bytearray(rest)
            for line in lines:
                out += self._line(line)
        if len(self._buf) > self._max_line:
            out.append(Rejection("line_too_long", f"no newline within {self._max_line} bytes",
                                 bytes(self._buf[:256]), self._fmt))
            self._buf.clear()
        return out

    def flush(self) -> list[Item]:
        line, self._buf = bytes(self._buf), bytearray()
        return self._line(line)

    def _line(self, line: bytes) -> list[Item]:
        line = line.strip()
        if not line:
            return []
        if len(line) > self._max_line:
            return [Rejection("line_too_long", f"{len(line)} bytes", line[:256], self._fmt)]
        item = self._decode(line)
        return [] if item is None else [item]  # None: no input (a comment, a module reply)


def stream_decoder(fmt: str, *, default_site: str | None = None,
                   ids: Mapping[str, str] | None = None) -> StreamDecoder:
    """``ids``: the device registry's ``scheme:id`` -> node names (Settings.external_ids)."""
    if fmt == "frame":
        return FrameStream()
    if fmt == "jsonl" or fmt == "native":
        return LineStream("native", lambda line: decode_native(line, default_site=default_site),
                          max_line=NATIVE_MAX_LINE)
    if fmt == "rylr":
        return LineStream("rylr", decode_rylr_line)
    if fmt == "frame-hex":
        return LineStream("frame-hex", decode_frame_hex)
    if fmt == "lpp-hex":
        return LineStream("lpp-hex",
                          lambda line: decode_lpp_hex_line(line, default_site=default_site))
    if fmt == "rtl433":
        return LineStream("rtl433",
                          lambda line: decode_rtl433_line(line, default_site=default_site,
                                                          ids=ids))
    raise ValueError(f"unknown stream format {fmt!r}; use one of {', '.join(STREAM_FORMATS)}")
