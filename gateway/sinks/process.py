"""The InfluxDB sink in a process of its own (``sinks.influxdb.separate_process: true``).

The sink already reads the outbox through its own SQLite connection and keeps its own
cursor, so it needs nothing from the gateway process but the file name and its settings.
In its own process it runs on the other core instead of sharing one interpreter lock
with the MQTT reader and the pipeline: at full speed the gateway then stores 10-30 % more
messages per second, for ~27 MB more memory (docs/mqtt.md, "Performance"). The
guarantees are the sink's own and do not change: the cursor moves only after the server
accepted a batch, so a sink process that dies, or is killed with the gateway, leaves its
rows in the outbox for the next one.

Parent side, :class:`SinkProcess`: started and stopped where the in-process sink would be
(``start()``; ``stop()`` after the pipeline's last commit, so the child sees every row).
Settings go to the child on its standard input as JSON, never on the command line (the
token would show in ``ps``). A child that ends without being asked to is started again
after a delay that doubles from 1 s to 60 s, and logged.

Child side, ``python -m gateway.sinks.process``: runs :class:`InfluxSink` until SIGTERM,
then finishes the batch in flight (at most the sink's stop timeout) and exits. It ignores
SIGINT (Ctrl-C reaches the whole process group, but the parent decides when the sink
stops: after the last commit), and it stops by itself when its parent is gone (a gateway
killed with SIGKILL must not leave a sink behind).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:  # the child does not import the configuration model (~13 MB)
    from gateway.config.models import InfluxDBSinkConfig

log = logging.getLogger(__name__)

#: How often the child looks whether its parent is still there.
PARENT_CHECK_S: Final = 1.0
RESTART_DELAY_S: Final = (1.0, 60.0)  # first, longest


def child_settings(cfg: InfluxDBSinkConfig) -> dict[str, Any]:
    """The sink's settings as JSON-able data, secrets included (for the child's stdin)."""
    data = cfg.model_dump(mode="json")
    if cfg.token is not None:
        data["token"] = cfg.token.get_secret_value()
    return data


class SinkProcess:
    """Runs and supervises ``python -m gateway.sinks.process`` (``start``/``stop``)."""

    def __init__(self, store_path: Path, cfg: InfluxDBSinkConfig, *, gateway_id: str,
                 stop_timeout_s: float = 3.0) -> None:
        self.store_path = Path(store_path)
        self.cfg = cfg
        self.gateway_id = gateway_id
        self.stop_timeout_s = stop_timeout_s
        self.name = "influxdb"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.running and self.proc is not None else []

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="sink-process-watch",
                                         daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        settings = json.dumps({
            "store": str(self.store_path), "gateway_id": self.gateway_id,
            "stop_timeout_s": self.stop_timeout_s, "log_level": logging.getLogger().level,
            "sink": child_settings(self.cfg),
        })
        with self._lock:
            if self._stopping.is_set():
                return
            proc = subprocess.Popen([sys.executable, "-m", "gateway.sinks.process"],
                                    stdin=subprocess.PIPE)
            assert proc.stdin is not None
            proc.stdin.write(settings.encode())
            proc.stdin.close()
            self.proc = proc
        log.info("sink %s: running in its own process (pid %d)", self.name, proc.pid)

    def _watch(self) -> None:
        delay = RESTART_DELAY_S[0]
        while not self._stopping.is_set():
            proc = self.proc
            if proc is None:
                return
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                delay = RESTART_DELAY_S[0]  # it had been running fine
            log.error("sink %s: its process (pid %d) ended with code %s; starting it again "
                      "in %.0f s (undelivered rows wait in the outbox)",
                      self.name, proc.pid, code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_DELAY_S[1])
            self.restarts += 1
            self._spawn()

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the child; it finishes the batch in flight. Killed if it does not end."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.stop_timeout_s + 5.0 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            log.warning("sink %s: its process did not stop; killed (its last batch is sent "
                        "again at the next start)", self.name)
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class _Secret:
    value: str

    def get_secret_value(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "_Secret('**********')"


@dataclass(frozen=True)
class _ChildSettings:
    """The sink's settings as the parent validated them (InfluxDBSinkConfig), as plain
    data: what :class:`InfluxSink` and its writers read of them."""

    url: str
    api: str
    org: str | None
    bucket: str | None
    database: str | None
    token: _Secret | None
    token_file: Path | None
    batch_size: int
    flush_interval_s: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _ChildSettings:
        token, token_file = data.get("token"), data.get("token_file")
        return cls(
            url=data["url"], api=data["api"], org=data.get("org"), bucket=data.get("bucket"),
            database=data.get("database"), token=_Secret(token) if token else None,
            token_file=Path(token_file) if token_file else None,
            batch_size=int(data["batch_size"]), flush_interval_s=float(data["flush_interval_s"]),
        )


def _child_main() -> int:
    from gateway.sinks.influxdb import InfluxSink

    settings = json.loads(sys.stdin.read())
    logging.basicConfig(level=settings["log_level"] or logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, after its last commit
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    parent = os.getppid()
    # Read by attribute only, like the model the parent validated them with.
    cfg = cast("InfluxDBSinkConfig", _ChildSettings.from_json(settings["sink"]))
    sink = InfluxSink(Path(settings["store"]), cfg, gateway_id=settings["gateway_id"],
                      stop_timeout_s=settings["stop_timeout_s"])
    sink.start()
    while not stop.wait(PARENT_CHECK_S):
        if os.getppid() != parent:
            log.warning("sink %s: the gateway process is gone; stopping", sink.name)
            break
        if not sink.running:
            log.error("sink %s: its thread ended; exiting so that it is started again",
                      sink.name)
            return 1
    sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())
