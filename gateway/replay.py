"""Feed recorded messages through decode -> validate -> store, as if they had arrived.

Node timestamps are kept as recorded (no skew check: the gateway clock says nothing about
when a recording was made); messages without one get the replay time, marked
``time_source=replay``. Replaying the same file twice stores nothing new: dedup sees every
packet again. With an InfluxDB sink configured, the stored readings are then delivered to
it before the command ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from gateway.pipeline.ingest import Pipeline
from gateway.sinks.influxdb import InfluxSink, WriteError

REPLAY_FORMATS = ("native", "frame-hex", "rylr", "frame", "lpp-hex", "rtl433", "ecowitt")
CHUNK = 1 << 16


def replay_files(pipeline: Pipeline, fmt: str, paths: Iterable[Path], *,
                 ids: Mapping[str, str] | None = None) -> dict[str, int]:
    """Replay files; return the counters this replay added (stored, duplicates, rejected.*).

    ``ids``: the device registry's ``scheme:id`` -> node names (``Settings.external_ids``).
    """
    before = dict(pipeline.totals)
    for path in paths:
        source = f"replay:{path.name}"
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
