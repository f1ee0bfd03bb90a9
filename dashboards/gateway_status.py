"""Gateway: is the gateway itself keeping up? Ingest rate, outbox backlog, write errors.

Everything here comes from the ``gateway`` measurement that the InfluxDB sink writes about
itself every few seconds (gateway/sinks/influxdb.py ``self_metrics_line``): the store's
counters with dots turned into underscores (``received_packets``, ``stored``,
``sink_influxdb_written``, ``sink_influxdb_write_errors_<class>``) and this sink's outbox
backlog (``backlog_reading``, ``backlog_device``, ``backlog_age_s``).
"""

from __future__ import annotations

from typing import Any, Final

from dashboards import common as c
from dashboards.influxql import Select, ident

UID: Final = "satoyama-gateway"
TITLE: Final = "Gateway"
VARIABLES: Final = ("gateway",)
WRITE_ERRORS: Final = "/^sink_.+_write_errors_/"  # one counter per sink and failure class
WRITTEN: Final = "/^sink_.+_written$/"
SINK_REJECTED: Final = "/^sink_.+_rejected_points$/"


def rate_per_minute(fieldname: str) -> Select:
    """A counter's growth per minute, per interval."""
    return Select([f"non_negative_derivative(last({fieldname}), 1m)"], "gateway",
                  variables=VARIABLES, group_time="$__interval", group_tags=("gateway",),
                  fill="none")


def _totals(fields: str) -> Select:
    """Counter totals per interval (a step line), not their differences: the first error
    of a class creates its counter, and a difference would need an earlier value."""
    return Select([f"last({fields})"], "gateway", variables=VARIABLES,
                  group_time="$__interval", group_tags=("gateway",), fill="none")


def build() -> dict[str, Any]:
    d = c.new_dashboard(
        UID, TITLE,
        "The gateway's own health: packets in and rows stored per minute, the outbox "
        "backlog waiting for InfluxDB and its age, points written and write errors by class.",
    )
    d = d.with_variable(c.variable("gateway", measurement="gateway"))

    d = d.with_panel(
        c.time_series("Ingest rate", "Packets received and readings rows stored per minute.",
                      [c.Query(rate_per_minute(ident("received_packets")),
                               alias="$tag_gateway received"),
                       c.Query(rate_per_minute(ident("stored")), ref_id="B",
                               alias="$tag_gateway stored")],
                      unit="cpm", decimals=1)
    )
    d = d.with_panel(
        c.time_series("Outbox backlog", "Rows in the SQLite outbox not yet accepted by "
                      "InfluxDB, per table. It grows while InfluxDB is unreachable and drains "
                      "after; nothing is lost while it grows (the disk is the limit).",
                      [c.Query(Select([f"last({ident(f)}) AS {ident(f)}"
                                       for f in ("backlog_reading", "backlog_device")],
                                      "gateway", variables=VARIABLES, group_time="$__interval",
                                      group_tags=("gateway",), fill="none"),
                               alias="$tag_gateway $col")],
                      unit="none", decimals=0, span=12)
    )
    d = d.with_panel(
        c.time_series("Oldest undelivered row", "Age of the oldest row InfluxDB has not yet "
                      "accepted (0 when caught up).",
                      [c.Query(Select([f"last({ident('backlog_age_s')}) AS {ident('age')}"],
                                      "gateway", variables=VARIABLES, group_time="$__interval",
                                      group_tags=("gateway",), fill="none"),
                               alias="$tag_gateway")],
                      unit="s", span=12)
        .thresholds(c.thresholds(c.GREEN, [(300, c.ORANGE), (3600, c.RED)]))
    )
    d = d.with_panel(
        c.time_series("Points written", "Points InfluxDB accepted per minute, per sink.",
                      [c.Query(rate_per_minute(WRITTEN), alias="$tag_gateway $col")],
                      unit="cpm", decimals=1, span=12)
    )
    d = d.with_panel(
        c.time_series("Write errors", "Failed writes by sink and failure class (network, auth, "
                      "throttled, server, bad_data...; docs/influxdb.md) and points InfluxDB "
                      "refused (quarantined): totals since the store was created, so a step "
                      "up is new errors. A counter appears at its first error.",
                      [c.Query(_totals(WRITE_ERRORS), alias="$tag_gateway $col"),
                       c.Query(_totals(SINK_REJECTED), ref_id="B",
                               alias="$tag_gateway $col")],
                      unit="none", decimals=0, span=12)
    )
    return c.to_dict(d)
