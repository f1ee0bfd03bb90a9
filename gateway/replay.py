"""Feed recorded messages through decode -> validate -> store, as if they had arrived.

Node timestamps are kept as recorded (no skew check: the gateway clock says nothing about
when a recording was made); messages without one get the replay time, marked
``time_source=replay``. Replaying the same file twice stores nothing new: dedup sees every
packet again. With an InfluxDB sink configured, the stored readings are then delivered to
it before the command ends.

Ecowitt upload bodies (one per line) are decided by the HTTP source's own decoder, with its
allow-list (``sources.http.stations``) and body limit (``max_body_bytes``): a capture
replays as it would have been taken live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from firmware_bridge.lorawan.common import MAX_MESSAGE
from gateway.config.models import HttpSourceConfig
from gateway.packet import Packet, Rejection
from gateway.pipeline.ingest import Pipeline
from gateway.sinks.influxdb import InfluxSink, WriteError
from gateway.sources.http import max_body_bytes, upload_decoder
from gateway.sources.mqtt_formats import message_decoder

REPLAY_FORMATS = ("native", "frame-hex", "rylr", "frame", "lpp-hex", "rtl433", "ecowitt",
                  "ttn", "chirpstack")
#: Formats replayed as MQTT messages, one JSON body per line, decoded without a topic.
MESSAGE_FORMATS = ("ttn", "chirpstack")
CHUNK = 1 << 16

#: One line of a recording (its line ending still on) -> what it decodes to.
LineDecoder = Callable[[bytes], list[Packet | Rejection]]


def topic_codec(fmt: str, topics: Sequence[tuple[str, str, str | None]]
                ) -> tuple[str | None, str | None]:
    """(codec, note) for replaying ``fmt`` messages without a topic: the codec the
    configured subscriptions of that format name (``sources.mqtt.topics[].codec``), when
    they name one; else None, with a note when they name several (then ``--topic`` says
    which subscription a file came from)."""
    codecs = {codec for _, entry_fmt, codec in topics if entry_fmt == fmt and codec}
    if len(codecs) <= 1:
        return next(iter(codecs), None), None
    return None, (f"sources.mqtt.topics name several {fmt} codecs ({', '.join(sorted(codecs))}):"
                  " give --topic with the topic the messages came on to use its codec")


def replay_files(pipeline: Pipeline, fmt: str, paths: Iterable[Path], *,
                 ids: Mapping[str, str] | None = None,
                 device_codecs: Mapping[str, str] | None = None,
                 topics: Sequence[tuple[str, str, str | None]] = (),
                 topic: str | None = None,
                 http: HttpSourceConfig | None = None) -> dict[str, int]:
    """Replay files; return the counters this replay added (stored, duplicates, rejected.*,
    ignored.*). ``ids`` (``scheme:id`` -> node, ``Settings.external_ids``) and
    ``device_codecs`` (node -> LoRaWAN codec) are the device registry's. ``topics`` are
    the MQTT subscriptions (``MqttSourceConfig.topic_formats``): a ttn/chirpstack message
    is decoded as if it had arrived on ``topic`` (its subscription's format and codec), or
    without one, with the codec of :func:`topic_codec`. ``http`` is the HTTP source's
    configuration (``sources.http``), whose allow-list and body limit Ecowitt bodies meet."""
    before = dict(pipeline.totals)
    by_line: tuple[LineDecoder, int] | None = None  # (decoder, longest line) or a stream
    if fmt in MESSAGE_FORMATS:
        by_line = _message_lines(pipeline, fmt, ids=ids, device_codecs=device_codecs,
                                 topics=topics, topic=topic), MAX_MESSAGE
    elif fmt == "ecowitt":
        by_line = _upload_lines(pipeline, http, ids=ids), max_body_bytes(http)
    for path in paths:
        source = f"replay:{path.name}"
        if by_line is not None:
            _replay_lines(pipeline, *by_line, path, source)
            continue
        pipeline.add_stream(source, "jsonl" if fmt == "native" else fmt, ids=ids)
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                pipeline.feed(source, chunk, replay=True)
                if pipeline.pending_packets >= pipeline.batch_max:
                    pipeline.commit()
        pipeline.finish_stream(source, replay=True)
        pipeline.commit()
    return {
        k: v - before.get(k, 0) for k, v in pipeline.totals.items() if v - before.get(k, 0)
    }


def _message_lines(pipeline: Pipeline, fmt: str, *, ids: Mapping[str, str] | None,
                   device_codecs: Mapping[str, str] | None,
                   topics: Sequence[tuple[str, str, str | None]],
                   topic: str | None) -> LineDecoder:
    """A ttn/chirpstack message per line, routed by ``topic`` as live, or with its codec."""
    decode = message_decoder(
        fmt, default_site=pipeline.policy.default_site, ids=ids or {},
        device_codecs=device_codecs or {}, topics=topics if topic else (),
        codec=None if topic else topic_codec(fmt, topics)[0])
    return lambda line: decode(topic or "", line)


def _upload_lines(pipeline: Pipeline, http: HttpSourceConfig | None, *,
                  ids: Mapping[str, str] | None) -> LineDecoder:
    """An Ecowitt upload body per line, decided by the HTTP source's decoder (the line
    ending is no part of the body: it does not count towards the body limit)."""
    upload = upload_decoder(http, default_site=pipeline.policy.default_site,
                            external_ids=ids or {})
    return lambda line: upload(line.rstrip(b"\r\n"))


def _replay_lines(pipeline: Pipeline, decode: LineDecoder, max_line: int, path: Path,
                  source: str) -> None:
    """Decode ``path`` line by line; a line over ``max_line`` bytes (its ending aside)
    reaches the decoder cut short, which refuses it, and the rest of it is skipped."""
    with open(path, "rb") as fh:
        while line := fh.readline(max_line + 2):
            if len(line) > max_line and not line.endswith(b"\n"):
                while (rest := fh.readline(CHUNK)) and not rest.endswith(b"\n"):
                    pass  # the decoder refuses the over-long start; skip the rest of it
            if line.strip():
                pipeline.handle(source, decode(line), replay=True)
            if pipeline.pending_packets >= pipeline.batch_max:
                pipeline.commit()
    pipeline.commit()


def deliver(sink: InfluxSink) -> tuple[dict[str, int], str | None]:
    """Drain the outbox into ``sink`` now (replay, then deliver, in one command).

    Returns the counts and, if the server stopped taking data, why: what was not delivered
    stays in the outbox, and `satoyama run` sends it later.
    """
    written = rejected = 0
    try:
        while True:
            step = sink.flush_once()
            written += step.written
            rejected += step.rejected
            if not step.full and not any(sink.backlog().values()):
                break
    except WriteError as exc:
        return {"written": written, "rejected": rejected}, str(exc)
    return {"written": written, "rejected": rejected}, None
