"""Property tests: decoders never raise on arbitrary input, and frames survive garbage."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.frame import Deframer, decode_frame, encode_frame
from firmware_bridge.hexline import decode_frame_hex
from firmware_bridge.native import decode_native
from firmware_bridge.reading_types import READING_TYPES
from firmware_bridge.rylr import decode_rylr_line
from gateway.packet import Packet, Rejection

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

readings = st.lists(
    st.sampled_from([t for t in READING_TYPES if t.quantity != "battery_v"]).flatmap(
        lambda rt: st.tuples(
            st.just(rt.quantity),
            st.integers(0, 250),
            st.integers(rt.min_raw, rt.max_raw).map(lambda raw, d=rt.divisor: raw / d),
        )
    ),
    max_size=8,
    unique_by=lambda r: (r[0], r[1]),
)
frames = st.builds(
    encode_frame,
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    readings,
    battery_v=st.none() | st.integers(0, 0xFFFE).map(lambda r: r / 1000),
    node_time_s=st.none() | st.integers(0, 0xFFFFFFFF),
    key=st.none() | st.binary(min_size=1, max_size=32),
    boot=st.booleans(),
)
# garbage that cannot contain a sync word, so every embedded frame must be recovered
clean_garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\xa5", b"\x00"))


def _drain(d: Deframer, chunks: list[bytes]) -> list[Packet | Rejection]:
    out: list[Packet | Rejection] = []
    for c in chunks:
        out += d.feed(c)
    return out + d.flush()


@FAST
@given(st.lists(st.binary(max_size=300), max_size=10))
def test_deframer_never_raises_on_arbitrary_bytes(chunks: list[bytes]) -> None:
    d = Deframer()
    for r in _drain(d, chunks):
        assert isinstance(r, Packet | Rejection)
    assert d.buffered == 0


@FAST
@given(st.lists(st.one_of(frames, st.binary(max_size=60)), max_size=12), st.data())
def test_deframer_on_frames_mixed_with_any_bytes(parts: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(parts)
    whole = _drain(Deframer(), [stream])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _drain(Deframer(), chunks) == whole


@FAST
@given(st.lists(st.tuples(clean_garbage, frames), min_size=1, max_size=10), clean_garbage)
def test_frames_embedded_in_garbage_are_all_recovered(
    parts: list[tuple[bytes, bytes]], tail: bytes
) -> None:
    stream = b"".join(g + f for g, f in parts) + tail
    results = _drain(Deframer(), [stream])
    packets = [r.raw for r in results if isinstance(r, Packet)]
    assert packets == [f for _, f in parts]
    rejected = [r for r in results if isinstance(r, Rejection)]
    assert all(r.reason == "garbage" for r in rejected)
    assert sum(int(r.detail.split()[0]) for r in rejected) == (
        sum(len(g) for g, _ in parts) + len(tail)
    )
    # byte by byte gives the same
    assert _drain(Deframer(), [stream[i : i + 1] for i in range(len(stream))]) == results


@FAST
@given(frames)
def test_frame_round_trips_through_every_line_format(frame: bytes) -> None:
    packet = decode_frame(frame)
    assert isinstance(packet, Packet) and packet.raw == frame
    hexed = decode_frame_hex(frame.hex())
    assert isinstance(hexed, Packet) and hexed.readings == packet.readings
    if len(frame) <= 120:  # an RYLR packet carries at most 240 hex characters
        line = f"+RCV=1,{2 * len(frame)},{frame.hex()},-90,3\r\n".encode()
        rylr = decode_rylr_line(line)
        assert isinstance(rylr, Packet) and rylr.seq == packet.seq


@FAST
@given(st.binary(max_size=300))
def test_single_frame_and_line_decoders_never_raise(data: bytes) -> None:
    assert isinstance(decode_frame(data), Packet | Rejection)
    assert isinstance(decode_frame(b"\xa5\x5a" + data), Packet | Rejection)
    assert decode_frame_hex(data) is None or True
    assert decode_frame_hex(data.hex()) is None or True
    assert decode_rylr_line(data) is None or True
    assert decode_rylr_line(b"+RCV=" + data) is None or True
    assert isinstance(decode_native(data), Packet | Rejection)


@FAST
@given(st.text(max_size=200))
def test_text_decoders_never_raise(text: str) -> None:
    assert isinstance(decode_native(text), Packet | Rejection)
    decode_frame_hex(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@FAST
@given(st.fixed_dictionaries(
    {}, optional={"node": json_values | st.just("n1"), "seq": json_values,
                  "ts": json_values | st.just("2026-10-01T00:00:00+09:00"),
                  "site": json_values, "battery_v": json_values,
                  "readings": st.dictionaries(st.text(max_size=20), json_values, max_size=5)}))
def test_native_never_raises_on_json_shaped_input(obj: dict[str, object]) -> None:
    import json

    try:
        line = json.dumps(obj)
    except ValueError:
        return
    assert isinstance(decode_native(line), Packet | Rejection)
