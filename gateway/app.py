"""Assemble and run a gateway from settings: sources -> queue -> pipeline -> store.

Threads: one per source (reading; the MQTT source adds paho's network thread), one pipeline
worker (decode, validate, commit). The main thread waits for a signal or a duration, then
sets the shared stop event: sources stop reading within 0.1 s, the worker drains the queue,
commits and returns (sending the MQTT acknowledgements of its last batch over the still
open connection), then the MQTT source says "offline" and disconnects, and the store closes.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import runtime
from gateway.clock import ClockMonitor
from gateway.config import Settings
from gateway.packet import Record
from gateway.pipeline.ingest import Pipeline
from gateway.pipeline.validate import DeviceInfo, Policy
from gateway.sinks.mqtt_alerts import MqttAlertPublisher
from gateway.sinks.process import SinkProcess
from gateway.sources.items import SourceQueue
from gateway.sources.mqtt import DEFAULT_RECEIVE_MAXIMUM, MqttSource
from gateway.sources.mqtt_formats import message_decoder
from gateway.sources.serial import SerialSource
from gateway.store.sqlite import BatchResult, Store
from rules.alert import AlertEvent
from rules.notify.dispatcher import Notifier
from rules.runner import RulesRunner
from rules.wiring import build_runner

if TYPE_CHECKING:
    from gateway.sinks.influxdb import InfluxSink
    from gateway.sources.http import HttpSource

log = logging.getLogger(__name__)


def store_path(settings: Settings) -> Path:
    return Path(settings.sinks.sqlite.path or Path(settings.data_dir) / "satoyama.db")


def open_store(settings: Settings) -> Store:
    sq = settings.sinks.sqlite
    return Store(
        store_path(settings),
        max_size_mb=sq.max_size_mb,
        full_policy=sq.full_policy,
        retention_days=sq.retention_days,
    )


def device_infos(settings: Settings) -> dict[str, DeviceInfo]:
    infos: dict[str, DeviceInfo] = {}
    for node, dev in (settings.devices or {}).items():
        key = dev.key.get_secret_value() if dev.key is not None else None
        infos[node] = DeviceInfo(
            site=dev.site or settings.site,
            plot=dev.plot,
            calibration={q: (c.scale, c.offset) for q, c in (dev.calibration or {}).items()},
            key=bytes.fromhex(key) if key else None,
        )
    return infos


def policy(settings: Settings) -> Policy:
    v = settings.validation
    return Policy(
        default_site=settings.site,
        max_clock_skew_s=v.max_clock_skew_s,
        skew_policy=v.skew_policy,
        queued_sources=frozenset({"mqtt"}),  # the broker keeps the session's messages
        max_delivery_delay_s=v.max_delivery_delay_s,
    )


def build_pipeline(
    settings: Settings,
    store: Store,
    *,
    on_commit: Callable[[BatchResult, list[Record]], None] | None = None,
) -> Pipeline:
    return Pipeline(
        store,
        policy(settings),
        devices=device_infos(settings),
        clock=ClockMonitor(
            require_sync=settings.clock.require_sync, not_before=settings.clock.not_before
        ),
        batch_max=settings.pipeline.batch_max,
        batch_interval_ms=settings.pipeline.batch_interval_ms,
        on_commit=on_commit,
    )


def receive_maximum(settings: Settings) -> int:
    """The MQTT in-flight window: two commit batches, so one fills while one commits.

    Messages are acknowledged only after their batch is committed, so the broker sends at
    most this many before it waits: throughput <= window / commit latency. Never more than
    the queue holds. Mosquitto 2.0.11 lets more through once PUBACKs flow, so the source's
    blocking put, not the window, is what bounds the queue there (docs/mqtt.md).
    """
    p = settings.pipeline
    return max(1, min(65535, p.queue_size, max(DEFAULT_RECEIVE_MAXIMUM, 2 * p.batch_max)))


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        on_commit: Callable[[BatchResult, list[Record]], None] | None = None,
        on_alerts: Callable[[list[AlertEvent]], None] | None = None,
        rules_time_scale: float = 1.0,
    ) -> None:
        self.settings = settings
        self._started_ns = time.time_ns()
        self.stop_event = threading.Event()
        # Bounded by messages: an MQTT read's batch counts as its messages (backpressure).
        self.inbox: queue.Queue[Any] = SourceQueue(maxsize=settings.pipeline.queue_size)
        self.store = open_store(settings)
        self.pipeline = build_pipeline(settings, self.store, on_commit=on_commit)
        self.sources: list[SerialSource] = []
        serial_cfg = settings.sources.serial
        if serial_cfg is not None and serial_cfg.port:
            self.pipeline.add_stream("serial", serial_cfg.format)
            self.sources.append(
                SerialSource(
                    "serial", str(serial_cfg.port), serial_cfg.baudrate, self.inbox,
                    reopen_interval_s=serial_cfg.reopen_interval_s, stop=self.stop_event,
                )
            )
        self.mqtt: MqttSource | None = None
        mqtt_cfg = settings.sources.mqtt
        if mqtt_cfg is not None:
            self.pipeline.add_message_source(
                "mqtt", message_decoder(mqtt_cfg.format, default_site=settings.site,
                                        topics=mqtt_cfg.topic_formats,
                                        ids=settings.external_ids,
                                        device_codecs=settings.device_codecs),
            )
            self.mqtt = MqttSource(
                "mqtt", mqtt_cfg, self.inbox, site=settings.site,
                gateway_id=settings.gateway_id, stop=self.stop_event,
                receive_maximum=receive_maximum(settings),
            )
        self.http: HttpSource | None = None
        http_cfg = settings.sources.http
        if http_cfg is not None:
            # Loaded only where it runs, like the InfluxDB writer: memory is the budget.
            from gateway.sources.http import HttpSource, upload_decoder

            self.http = HttpSource(
                "http", http_cfg, self.inbox, stop=self.stop_event,
                decode=upload_decoder(http_cfg, default_site=settings.site,
                                      external_ids=settings.external_ids),
            )
            self.pipeline.add_message_source("http", self.http.decoder())
        # Sinks drain the store (the outbox) on their own threads with their own cursors;
        # they get no shared stop event, so they keep draining until the pipeline's last
        # commit and are stopped after it. What they have not sent stays in the outbox.
        self.sinks: list[InfluxSink | SinkProcess | Notifier | MqttAlertPublisher] = []
        influx_cfg = settings.sinks.influxdb
        if influx_cfg is not None and influx_cfg.enabled:
            if influx_cfg.separate_process:
                self.sinks.append(SinkProcess(store_path(settings), influx_cfg,
                                              gateway_id=settings.gateway_id))
            else:
                from gateway.sinks.influxdb import InfluxSink  # HTTP client where it runs

                sink = InfluxSink(store_path(settings), influx_cfg,
                                  gateway_id=settings.gateway_id)
                self.pipeline.commit_listeners.append(
                    lambda result, _records: sink.offer(result.appended,
                                                        more_coming=result.more_coming))
                self.sinks.append(sink)
        if settings.notifications.active:  # the alert outbox's consumers (docs/alerts.md)
            self.sinks.append(
                Notifier(store_path(settings), settings.notifications, settings.tzinfo,
                         plots={(d.site or settings.site, d.plot): d.crop
                                for d in settings.devices.values()}))
        if mqtt_cfg is not None and settings.sinks.mqtt_alerts.enabled:
            self.sinks.append(MqttAlertPublisher(
                store_path(settings), mqtt_cfg, settings.sinks.mqtt_alerts,
                gateway_id=settings.gateway_id))
        # The rules engine reads committed rows like a sink does (rules/runner.py).
        self.rules: RulesRunner | None = build_runner(
            settings, store_path(settings), on_events=on_alerts, time_scale=rules_time_scale)
        if self.rules is not None:
            runner = self.rules
            self.pipeline.commit_listeners.append(
                lambda result, _records: runner.offer(result.appended))
        self._worker = threading.Thread(
            target=self.pipeline.run, args=(self.inbox, self.stop_event),
            name="pipeline", daemon=True,
        )

    def start(self) -> None:
        if not self.sources and self.mqtt is None and self.http is None:
            log.warning("no sources configured: the gateway will store nothing")
        self._worker.start()
        for source in self.sources:
            source.start()
        if self.mqtt is not None:
            self.mqtt.start()
        if self.http is not None:
            self.http.start()  # raises OSError if it cannot listen (port taken)
        for sink in self.sinks:
            sink.start()
        if self.rules is not None:
            self.rules.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()  # the MQTT source stops taking messages, keeps its connection
        for source in self.sources:
            source.stop(timeout=2.0)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.error("pipeline did not finish within %.0f s", timeout)
        if self.mqtt is not None:
            self.mqtt.stop()  # after the last commit, whose acknowledgements it sends
        if self.http is not None:
            self.http.stop()  # after the last commit too: its uploads are answered 200
        if self.rules is not None:
            self.rules.stop()  # evaluates the last commits first
        for sink in self.sinks:
            sink.stop()
        self.report(stopped=True)
        self.store.close()

    def report(self, *, stopped: bool = False) -> None:
        """Write the runtime report ``satoyama status`` shows (gateway/runtime.py)."""
        sources: list[Any] = [s.stats() for s in self.sources]
        sources += [s.stats() for s in (self.mqtt, self.http) if s is not None]
        report = runtime.snapshot(
            pid=os.getpid(), gateway_id=self.settings.gateway_id, started_ns=self._started_ns,
            now_ns=time.time_ns(), queue_items=self.inbox.qsize(),
            queue_limit=self.settings.pipeline.queue_size, paused=self.pipeline.paused,
            sources=sources, stopped=stopped)
        try:
            self.store.set_meta(runtime.META_KEY, runtime.encode(report))
        except Exception as exc:  # a status report must never stop the gateway
            log.warning("runtime report not written: %s", exc)

    def run_until_stopped(self, duration: float | None = None) -> None:
        """Run until SIGINT/SIGTERM or ``duration`` seconds, then shut down cleanly."""
        def _signal(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping", signum)
            self.stop_event.set()

        old = {s: signal.signal(s, _signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            end = None if duration is None else time.monotonic() + duration
            report_at = time.monotonic()
            while not self.stop_event.is_set():
                now = time.monotonic()
                if end is not None and now >= end:
                    break
                if now >= report_at:
                    self.report()
                    report_at = now + runtime.REPORT_INTERVAL_S
                self.stop_event.wait(0.2)
                if not self._worker.is_alive():
                    log.error("pipeline worker ended unexpectedly")
                    break
        finally:
            self.stop()
            for s, handler in old.items():
                signal.signal(s, handler)
