"""Sinks: where stored readings go after the SQLite outbox.

* ``line_protocol``: outbox rows as InfluxDB line protocol (pure).
* ``influxdb``: :class:`~gateway.sinks.influxdb.InfluxSink`, the thread that drains the
  outbox into InfluxDB (v1 or v2 write API) and sorts every failure into split, wait or
  ask a person; see docs/influxdb.md.
* ``process``: the InfluxDB sink in a process of its own (``separate_process``), and the
  gateway's side that starts, restarts and stops it.
* ``retry``: the backoff helper the sinks share; ``lifecycle``: how a consumer's thread
  stops (shared with the notifier).
* ``mqtt_alerts``: alert transitions published on MQTT (docs/alerts.md).

The SQLite store itself (``gateway.store``) is the first sink and the outbox of the others.
"""
