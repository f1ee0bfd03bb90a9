"""Feed recorded messages through decode -> validate -> store, as if they had arrived.

Node timestamps are kept as recorded (no skew check: the gateway clock says nothing about
when a recording was made); messages without one get the replay time, marked
``time_source=replay``. Replaying the same file twice stores nothing new: dedup sees every
packet again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gateway.pipeline.ingest import Pipeline

REPLAY_FORMATS = ("native", "frame-hex", "rylr", "frame")
CHUNK = 1 << 16


def replay_files(pipeline: Pipeline, fmt: str, paths: Iterable[Path]) -> dict[str, int]:
    """Replay files; return the counters this replay added (stored, duplicates, rejected.*)."""
    before = dict(pipeline.totals)
    for path in paths:
        source = f"replay:{path.name}"
        pipeline.add_stream(source, "jsonl" if fmt == "native" else fmt)
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
