"""Deframer: a serial byte stream with garbage, damage and arbitrary chunking."""

from __future__ import annotations

from collections.abc import Sequence

from firmware_bridge.frame import Deframer, encode_frame, wrap_body
from gateway.packet import Packet, Rejection

Result = Packet | Rejection


def frame(seq: int, node: int = 7) -> bytes:
    return encode_frame(node, seq, {("temperature_c", "main"): 20 + seq / 100,
                                    ("soil_moisture_pct", "soil_10cm"): 30.0},
                        battery_v=3.8, node_time_s=1_790_000_000 + seq)


def run(stream: bytes, chunks: Sequence[int] | None = None) -> list[Result]:
    d = Deframer()
    out: list[Result] = []
    if chunks is None:
        out += d.feed(stream)
    else:
        pos = 0
        for size in chunks:
            out += d.feed(stream[pos : pos + size])
            pos += size
        out += d.feed(stream[pos:])
    out += d.flush()
    assert d.buffered == 0
    return out


def summary(results: list[Result]) -> list[tuple[str, int | None]]:
    return [("ok", r.seq) if isinstance(r, Packet) else (r.reason, len(r.raw)) for r in results]


def test_clean_stream() -> None:
    frames = [frame(i) for i in range(50)]
    results = run(b"".join(frames))
    assert [r.seq for r in results if isinstance(r, Packet)] == list(range(50))
    assert all(isinstance(r, Packet) for r in results)
    assert [r.raw for r in results] == frames


def test_garbage_between_frames() -> None:
    stream = b"\x00\x01boot msg\r\n" + frame(1) + b"\xff" * 3 + frame(2) + b"tail"
    results = run(stream)
    assert summary(results) == [("garbage", 12), ("ok", 1), ("garbage", 3), ("ok", 2),
                                ("garbage", 4)]
    assert isinstance(results[0], Rejection)
    assert results[0].raw == b"\x00\x01boot msg\r\n" and "12 bytes" in results[0].detail


def test_garbage_evidence_is_capped_and_long_runs_are_split() -> None:
    d = Deframer(max_garbage_run=1000)
    out = d.feed(b"\x01" * 2500) + d.feed(frame(1)) + d.flush()
    garbage = [r for r in out if isinstance(r, Rejection)]
    assert [g.reason for g in garbage] == ["garbage"] * 3
    assert [len(g.raw) for g in garbage] == [256, 256, 256]
    assert [g.detail.split()[0] for g in garbage] == ["1000", "1000", "500"]
    assert isinstance(out[-1], Packet)


def test_bad_crc_drops_the_frame_and_keeps_the_next() -> None:
    bad = bytearray(frame(2))
    bad[12] ^= 0x40
    results = run(frame(1) + bytes(bad) + frame(3))
    assert summary(results) == [("ok", 1), ("bad_crc", len(bad)), ("ok", 3)]


def test_truncated_frame_followed_by_a_frame() -> None:
    cut = frame(2)[:15]
    results = run(frame(1) + cut + frame(3) + frame(4))
    assert summary(results) == [("ok", 1), ("truncated", 15), ("ok", 3), ("ok", 4)]
    assert results[1].raw == cut


def test_truncated_frame_is_reported_without_waiting_for_more_data() -> None:
    """The frame after a cut one is decoded as soon as it is complete."""
    d = Deframer()
    out = d.feed(frame(1)[:12] + frame(2))
    assert summary(out) == [("truncated", 12), ("ok", 2)]


def test_truncated_at_end_of_stream() -> None:
    results = run(frame(1) + frame(2)[:20])
    assert summary(results) == [("ok", 1), ("truncated", 20)]
    assert summary(run(frame(1) + b"\xa5\x5a")) == [("ok", 1), ("truncated", 2)]
    assert summary(run(frame(1) + b"\xa5")) == [("ok", 1), ("garbage", 1)]


def test_duplicates_are_both_delivered() -> None:
    f = frame(5)
    assert summary(run(f + f)) == [("ok", 5), ("ok", 5)]


def test_bad_length_then_resync() -> None:
    stream = b"\xa5\x5a\x02junk" + frame(1) + b"\xa5\x5a\xff" + frame(2)
    assert summary(run(stream)) == [("bad_length", 3), ("garbage", 4), ("ok", 1),
                                    ("bad_length", 3), ("ok", 2)]


def test_unsupported_version_and_unknown_type_in_a_stream() -> None:
    v2 = wrap_body(bytes([0x20, 0, 1, 0, 1]))
    unknown = wrap_body(bytes([0x10, 0, 1, 0, 1, 0x7F, 0, 0, 0]))
    results = run(frame(1) + v2 + unknown + frame(2))
    assert summary(results) == [("ok", 1), ("unsupported_version", len(v2)),
                                ("unknown_reading_type", len(unknown)), ("ok", 2)]


def _mixed_stream() -> bytes:
    bad = bytearray(frame(3))
    bad[-1] ^= 1
    return (b"noise" + frame(1) + frame(2)[:9] + frame(2) + bytes(bad) + b"\xa5\xa5\x00"
            + frame(4) + frame(4) + b"\xa5\x5a\x01" + frame(5) + frame(6)[:25])


def test_byte_by_byte_equals_one_chunk() -> None:
    stream = _mixed_stream()
    whole = run(stream)
    assert summary(whole) == [
        ("garbage", 5), ("ok", 1), ("truncated", 9), ("ok", 2), ("bad_crc", len(frame(3))),
        ("garbage", 3), ("ok", 4), ("ok", 4), ("bad_length", 3), ("ok", 5), ("truncated", 25),
    ]
    assert run(stream, [1] * len(stream)) == whole


def test_every_split_point_gives_the_same_result() -> None:
    stream = _mixed_stream()
    whole = run(stream)
    for cut in range(len(stream) + 1):
        assert run(stream, [cut]) == whole, cut
    for a in range(0, len(stream), 7):
        for b in range(1, 40, 3):
            assert run(stream, [a, b]) == whole, (a, b)


def test_buffer_stays_bounded() -> None:
    d = Deframer()
    for _ in range(200):
        d.feed(b"\x00" * 1000 + frame(1)[:30])
        assert d.buffered <= 2 * 255
