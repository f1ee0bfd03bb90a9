"""The compact binary frame of battery-powered LoRa/FSK nodes (layout in PROTOCOL.md).

::

    A5 5A | LEN | VER/FLAGS | NODE u16 | SEQ u16 | [TS u32] | (TYPE CH VALUE)* | [TAG 8] | CRC u16
    sync    VER..TAG length   hi: version 1, lo: bit0 TS, bit1 TAG, bit2 boot
                                                CRC-16/CCITT-FALSE over LEN..TAG, big-endian

:func:`encode_frame` is the reference encoder (simulator, tests, docs), :func:`decode_frame`
decodes one complete frame, :class:`Deframer` cuts a serial byte stream into frames and
says what it skipped and why. All of it is pure: bytes in, Packet/Rejection out.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from typing import Final

from gateway.packet import Packet, Rejection

from . import reasons
from .auth import TAG_SIZE, sign
from .crc import crc16
from .reading_types import (
    BATTERY_QUANTITY,
    BY_CODE,
    BY_QUANTITY,
    CHANNEL_TAGS,
    MAX_CHANNEL,
    ReadingType,
    channel_for_sensor,
)

SYNC: Final = b"\xa5\x5a"
SYNC0: Final = 0xA5
VERSION: Final = 1
FLAG_TIMESTAMP: Final = 0x01
FLAG_TAG: Final = 0x02
FLAG_BOOT: Final = 0x04
FLAG_RESERVED: Final = 0x08
MIN_LEN: Final = 5  # VER/FLAGS + NODE + SEQ
MAX_LEN: Final = 250
OVERHEAD: Final = 5  # SYNC + LEN + CRC around the LEN bytes
MAX_FRAME: Final = MAX_LEN + OVERHEAD
FORMAT: Final = "frame"

_HEADER = struct.Struct(">BHH")  # VER/FLAGS, NODE, SEQ
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


class _NodeNames(dict[int, str]):
    """``n<id>`` per NODE value, made on first use (a table of all 65,536 took 4 MB)."""

    def __missing__(self, node_id: int) -> str:
        if not 0 <= node_id <= 0xFFFF:
            raise IndexError(f"node id {node_id} out of range 0..65535")
        name = self[node_id] = f"n{node_id}"
        return name


_NODE_NAMES: Final = _NodeNames()

Result = Packet | Rejection
ReadingsArg = Mapping[tuple[str, str], float] | Iterable[tuple[str, int, float]]


def node_name(node_id: int) -> str:
    """Node name for a frame's NODE field: 17 -> ``'n17'``."""
    return _NODE_NAMES[node_id]


def _raw_value(rt: ReadingType, value: float) -> int:
    if math.isnan(value):
        return rt.fault_raw
    raw = round(value * rt.divisor)
    if not rt.min_raw <= raw <= rt.max_raw:
        raise ValueError(
            f"{rt.quantity}={value!r} does not fit {rt.kind} x{rt.scale:g} "
            f"[{rt.min_value:g}, {rt.max_value:g}]"
        )
    return raw


def encode_frame(
    node_id: int,
    seq: int,
    readings: ReadingsArg,
    *,
    battery_v: float | None = None,
    node_time_s: float | None = None,
    key: bytes | None = None,
    boot: bool = False,
) -> bytes:
    """One complete frame, sync to CRC.

    ``readings`` is either ``{(quantity, sensor_tag): value}`` as in ``Packet.readings`` or
    ``[(quantity, channel, value)]``. A NaN value is sent as the type's sensor-fault
    sentinel. ``seq`` wraps modulo 65536; ``node_time_s`` is truncated to whole seconds.
    Raises ValueError for what a node could not send (unknown quantity, value out of the
    type's range, frame over 250 bytes): encoding is for our own code, not for input.
    """
    if not 0 <= node_id <= 0xFFFF:
        raise ValueError(f"node id {node_id} outside 0..65535")
    if seq < 0:
        raise ValueError(f"seq {seq} is negative")
    items: list[tuple[str, int, float]] = []
    if isinstance(readings, Mapping):
        for (quantity, tag), value in readings.items():
            channel = channel_for_sensor(tag)
            if channel is None:
                raise ValueError(f"sensor tag {tag!r} has no channel byte (main or soil_Ncm)")
            items.append((quantity, channel, value))
    else:
        items.extend(readings)
    if battery_v is not None:
        items.append((BATTERY_QUANTITY, 0, battery_v))

    flags = 0
    parts = [b""]
    if node_time_s is not None:
        ts = int(node_time_s)
        if not 0 <= ts <= 0xFFFFFFFF:
            raise ValueError(f"node time {node_time_s} outside uint32 seconds")
        flags |= FLAG_TIMESTAMP
        parts.append(_U32.pack(ts))
    for quantity, channel, value in items:
        rt = BY_QUANTITY.get(quantity)
        if rt is None:
            raise ValueError(f"{quantity!r} has no frame reading type")
        if not 0 <= channel <= MAX_CHANNEL:
            raise ValueError(f"channel {channel} outside 0..{MAX_CHANNEL}")
        parts.append(bytes((rt.code, channel)) + rt.codec.pack(_raw_value(rt, value)))
    if key is not None:
        flags |= FLAG_TAG
    if boot:
        flags |= FLAG_BOOT
    parts[0] = _HEADER.pack((VERSION << 4) | flags, node_id, seq & 0xFFFF)
    body = b"".join(parts)
    if key is not None:
        body += sign(key, body)
    return wrap_body(body)


def wrap_body(body: bytes) -> bytes:
    """Sync, LEN and CRC around ``body`` (VER through the tag), which is taken as it is:
    for test vectors of malformed frames as much as for :func:`encode_frame`."""
    if len(body) > MAX_LEN:
        raise ValueError(f"frame body of {len(body)} bytes exceeds {MAX_LEN}")
    covered = bytes((len(body),)) + body
    return SYNC + covered + _U16.pack(crc16(covered))


def _crc_ok(buf: bytes, start: int, end: int) -> bool:
    """CRC of the frame ``buf[start:end]`` (sync included) is correct."""
    return crc16(buf[start + 2 : end - 2]) == (buf[end - 2] << 8 | buf[end - 1])


def _parse(frame: bytes, fmt: str) -> Packet | Rejection:
    """Decode a frame whose sync, LEN and CRC are already known to be right."""
    vf = frame[3]
    if vf >> 4 != VERSION or vf & FLAG_RESERVED:
        return Rejection(
            reasons.UNSUPPORTED_VERSION,
            f"version {vf >> 4} flags 0x{vf & 0xF:x} (this decoder: version {VERSION}, "
            "flag bit 3 reserved)",
            frame,
            fmt,
        )
    _, node_id, seq = _HEADER.unpack_from(frame, 3)
    node = _NODE_NAMES[node_id]
    end = len(frame) - 2
    i = 8
    tag: bytes | None = None
    if vf & FLAG_TAG:
        end -= TAG_SIZE
    node_time_ns: int | None = None
    if vf & FLAG_TIMESTAMP:
        if end >= 12:
            node_time_ns = _U32.unpack_from(frame, 8)[0] * 1_000_000_000
        i = 12
    if end < i:
        return Rejection(
            reasons.BAD_LENGTH,
            f"LEN {frame[2]} too small for flags 0x{vf & 0xF:x}",
            frame,
            fmt,
            node,
            seq,
        )
    readings: dict[tuple[str, str], float] = {}
    battery_v: float | None = None
    seen: set[int] = set()
    while i < end:
        code = frame[i]
        rt = BY_CODE.get(code)
        if rt is None:
            return Rejection(
                reasons.UNKNOWN_READING_TYPE,
                f"reading type 0x{code:02x} at offset {i}",
                frame,
                fmt,
                node,
                seq,
            )
        j = i + 2 + rt.size
        if j > end:
            return Rejection(
                reasons.BAD_LENGTH,
                f"reading 0x{code:02x} at offset {i} needs {j - i} bytes, {end - i} left",
                frame,
                fmt,
                node,
                seq,
            )
        channel = frame[i + 1]
        sensor = CHANNEL_TAGS[channel]
        if sensor is None or (code == 0x20 and channel):
            return Rejection(
                reasons.BAD_CHANNEL,
                f"reading 0x{code:02x} on channel {channel}",
                frame,
                fmt,
                node,
                seq,
            )
        key = code << 8 | channel
        if key in seen:
            return Rejection(
                reasons.DUPLICATE_READING,
                f"reading 0x{code:02x} channel {channel} twice",
                frame,
                fmt,
                node,
                seq,
            )
        seen.add(key)
        raw = rt.codec.unpack_from(frame, i + 2)[0]
        value = math.nan if raw == rt.fault_raw else raw / rt.divisor
        if code == 0x20:
            battery_v = value
        else:
            readings[(rt.quantity, sensor)] = value
        i = j
    signed: bytes | None = None
    if vf & FLAG_TAG:
        signed = frame[3:end]
        tag = frame[end : end + TAG_SIZE]
    return Packet(
        node=node,
        seq=seq,
        readings=readings,
        format=fmt,
        raw=frame,
        node_time_ns=node_time_ns,
        battery_v=battery_v,
        auth_tag=tag,
        signed=signed,
    )


def is_boot(packet: Packet) -> bool:
    """True if a frame packet has the boot flag (first frame after a node reset)."""
    raw = packet.raw
    return len(raw) > 3 and raw[:2] == SYNC and bool(raw[3] & FLAG_BOOT)


def decode_frame(buf: bytes, *, fmt: str = FORMAT) -> Packet | Rejection:
    """Decode exactly one complete frame, sync included. Never raises for bad input.

    ``fmt`` labels the result (``frame``, ``frame-hex``, ``rylr``).
    """
    buf = bytes(buf)
    n = len(buf)
    if n < 2 or buf[0] != 0xA5 or buf[1] != 0x5A:
        return Rejection(reasons.BAD_SYNC, f"{n} bytes not starting with A5 5A", buf, fmt)
    if n < 3:
        return Rejection(reasons.TRUNCATED, "sync without LEN", buf, fmt)
    length = buf[2]
    if not MIN_LEN <= length <= MAX_LEN:
        return Rejection(reasons.BAD_LENGTH, f"LEN {length} outside 5..250", buf, fmt)
    total = length + OVERHEAD
    if n < total:
        return Rejection(reasons.TRUNCATED, f"{n} of {total} bytes", buf, fmt)
    if n > total:
        return Rejection(reasons.BAD_LENGTH, f"{n} bytes, LEN says {total}", buf, fmt)
    if not _crc_ok(buf, 0, n):
        return Rejection(reasons.BAD_CRC, f"CRC mismatch over {length + 1} bytes", buf, fmt)
    return _parse(buf, fmt)


class Deframer:
    """Cuts a byte stream (serial port) into frames; resynchronises after garbage.

    ``feed`` returns results in stream order and gives the same results however the stream
    is split into chunks; ``flush`` ends the stream (reports an unfinished frame as
    ``truncated`` and pending garbage). Between calls it keeps at most two frames' worth of
    bytes (a frame and, while deciding whether it was cut short, the next one).

    - Bytes before a sync word are one ``garbage`` rejection per run, reported when the run
      ends (or every ``max_garbage_run`` bytes), with up to 256 bytes of evidence.
    - A frame whose CRC fails while a CRC-valid frame starts inside its claimed span was cut
      short: ``truncated`` (raw = up to that frame), and the next frame is decoded.
      While a frame is incomplete, a valid frame found inside its span settles this early,
      so a cut frame does not hold the next one back until more bytes arrive.
    - Otherwise a CRC failure is ``bad_crc`` and the whole claimed span is dropped with it.
    """

    EVIDENCE: Final = 256

    def __init__(self, *, max_garbage_run: int = 65536, fmt: str = FORMAT) -> None:
        if max_garbage_run < 1:
            raise ValueError("max_garbage_run must be positive")
        self._pending = b""
        self._garbage = bytearray()
        self._garbage_count = 0
        self._max_garbage_run = max_garbage_run
        self._fmt = fmt

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._pending)

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Packet | Rejection]:
        data = self._pending + bytes(chunk) if self._pending else bytes(chunk)
        out: list[Result] = []
        pos = self._scan(data, out, final=False)
        self._pending = data[pos:]
        return out

    def flush(self) -> list[Packet | Rejection]:
        """End of stream: decide on everything still buffered."""
        data, self._pending = self._pending, b""
        out: list[Result] = []
        self._scan(data, out, final=True)
        self._end_garbage(out)
        return out

    # -- internals -------------------------------------------------------------------------

    def _add_garbage(self, data: bytes, start: int, stop: int, out: list[Result]) -> None:
        while start < stop:
            take = min(self._max_garbage_run - self._garbage_count, stop - start)
            room = self.EVIDENCE - len(self._garbage)
            if room > 0:
                self._garbage += data[start : start + min(room, take)]
            self._garbage_count += take
            start += take
            if self._garbage_count >= self._max_garbage_run:
                self._end_garbage(out)

    def _end_garbage(self, out: list[Result]) -> None:
        if self._garbage_count:
            out.append(
                Rejection(
                    reasons.GARBAGE,
                    f"{self._garbage_count} bytes skipped before a sync word",
                    bytes(self._garbage),
                    self._fmt,
                )
            )
            self._garbage.clear()
            self._garbage_count = 0

    @staticmethod
    def _embedded(data: bytes, start: int, stop: int, final: bool) -> int | None:
        """First CRC-valid frame starting in ``[start, stop)``: its offset; -1 if one
        might still be (bytes missing); None if there is none."""
        n = len(data)
        q = data.find(SYNC, start, stop + 1)
        while 0 <= q < stop:
            if q + 3 > n:
                return None if final else -1
            length = data[q + 2]
            if MIN_LEN <= length <= MAX_LEN:
                end = q + length + OVERHEAD
                if end > n:
                    if not final:
                        return -1
                elif _crc_ok(data, q, end):
                    return q
            q = data.find(SYNC, q + 2, stop + 1)
        return None

    def _scan(self, data: bytes, out: list[Result], final: bool) -> int:
        """Decode what ``data`` allows; return the offset of the first byte still needed."""
        n = len(data)
        fmt = self._fmt
        pos = 0
        find = data.find
        while True:
            p = find(SYNC, pos)
            if p < 0:
                keep = n - 1 if (not final and n > pos and data[-1] == SYNC0) else n
                self._add_garbage(data, pos, keep, out)
                return keep
            if p > pos:
                self._add_garbage(data, pos, p, out)
            if self._garbage_count:
                self._end_garbage(out)
            if p + 3 > n:
                if not final:
                    return p
                out.append(Rejection(reasons.TRUNCATED, "sync at end of input", data[p:], fmt))
                return n
            length = data[p + 2]
            if not MIN_LEN <= length <= MAX_LEN:
                out.append(
                    Rejection(reasons.BAD_LENGTH, f"LEN {length} outside 5..250",
                              data[p : p + 3], fmt)
                )
                pos = p + 3  # an out-of-range LEN is never 0xA5, so no sync starts there
                continue
            end = p + length + OVERHEAD
            if end <= n:
                if _crc_ok(data, p, end):
                    out.append(_parse(data[p:end], fmt))
                    pos = end
                    continue
                q = self._embedded(data, p + 2, end, final)
                if q == -1:
                    return p
                if q is None:
                    out.append(Rejection(reasons.BAD_CRC, f"CRC mismatch, LEN {length}",
                                         data[p:end], fmt))
                    pos = end
                    continue
            else:
                q = self._embedded(data, p + 2, n, final)
                if q == -1 or (q is None and not final):
                    return p
                if q is None:
                    out.append(Rejection(reasons.TRUNCATED, f"{n - p} of {end - p} bytes",
                                         data[p:], fmt))
                    return n
            out.append(
                Rejection(reasons.TRUNCATED,
                          f"next frame starts after {q - p} of {end - p} bytes",
                          data[p:q], fmt)
            )
            pos = q
