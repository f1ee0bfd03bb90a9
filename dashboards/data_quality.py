"""Data quality: for researchers who need to know what is missing and what was refused.

Readings per hour per node (a cell at 0 is a gap), the longest silence per node, and the
gateway's own counters from the ``gateway`` measurement: quarantined inputs by reason
(``rejected_<reason>``) and duplicates dropped by dedup. Counters are totals since the
store was created, so panels show their increase per interval (``non_negative_difference``)
or their latest totals (``last``).
"""

from __future__ import annotations

from typing import Any, Final

from grafana_foundation_sdk.builders import bargauge, statushistory
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import common as c
from dashboards.influxql import Select, ident, subquery
from gateway.catalogue import READING_FIELDS

UID: Final = "satoyama-data-quality"
TITLE: Final = "Data quality"
VARIABLES: Final = ("site", "plot", "node")
REJECTED: Final = "/^rejected_/"  # one counter per quarantine reason


def quantity_variable() -> db.CustomVariable:
    """Which quantity to count: every reading field of the catalogue."""
    return (db.CustomVariable("quantity").label("Quantity").values(",".join(READING_FIELDS))
            .current(dm.VariableOption(selected=True, text=READING_FIELDS[0],
                                       value=READING_FIELDS[0]))
            .multi(False))


def readings_per_hour() -> Select:
    return Select([f'count({ident("$quantity")}) AS {ident("readings")}'], "reading",
                  variables=VARIABLES, group_time="1h",
                  group_tags=("site", "node", "sensor"), fill="0")


def longest_gap() -> str:
    """Per node: the longest time between two consecutive device points in the range."""
    inner = Select([f'elapsed({ident("seq")}, 1s) AS {ident("gap")}'], "device",
                   variables=VARIABLES, group_tags=("site", "plot", "node"))
    return subquery([f'max({ident("gap")}) AS {ident("longest_gap")}'], inner,
                    group_tags=("site", "plot", "node"))


def counter_increase(fields: str, interval: str = "$__interval") -> Select:
    """How much the gateway counters ``fields`` (a name or /regex/) grew per interval."""
    return Select([f"non_negative_difference(last({fields}))"], "gateway",
                  variables=("gateway",), group_time=interval, group_tags=("gateway",),
                  fill="none")


def counter_total(fields: str) -> Select:
    """The counters' latest totals (since the gateway's store was created)."""
    return Select([f"last({fields})"], "gateway", variables=("gateway",),
                  group_tags=("gateway",))


def build() -> dict[str, Any]:
    d = c.new_dashboard(
        UID, TITLE,
        "What is missing and what was refused: readings per hour per node, the longest "
        "silence per node, quarantined inputs by reason and duplicates dropped.",
    ).time("now-7d", "now")
    for key in VARIABLES:
        d = d.with_variable(c.variable(key))
    d = d.with_variable(quantity_variable())
    d = d.with_variable(c.variable("gateway", measurement="gateway"))

    d = d.with_panel(
        statushistory.Panel().title("Readings per hour: $quantity")
        .description("Stored readings of the chosen quantity per node, depth and hour. Red "
                     "cells are hours without a reading: gaps in the series.")
        .datasource(c.DATASOURCE).height(10).span(24).show_value(cm.VisibilityMode.AUTO)
        .with_target(c.Query(readings_per_hour(), alias="$tag_site $tag_node $tag_sensor"))
        .unit("none").decimals(0)
        .thresholds(c.thresholds(c.RED, [(1, c.ORANGE), (6, c.GREEN)]))
    )
    d = d.with_panel(
        c.table_panel("Longest silence per node",
                      "The longest time between two uplinks of each node in the range; "
                      "compare it with the node's reporting interval.",
                      [c.Query(longest_gap(), table_format=True)], span=12)
        .override_by_name("longest_gap", c.column(display="Longest gap", unit="s"))
        .override_by_name("Time", [dm.DynamicConfigValue(id_val="custom.hidden", value=True)])
    )
    d = d.with_panel(
        bargauge.Panel().title("Quarantined by reason")
        .description("Inputs refused and kept in quarantine since the gateway's store was "
                     "created, by reason (bad CRC, garbage, out of range...), as of the "
                     "latest report in the range. `satoyama status` lists them.")
        .datasource(c.DATASOURCE).height(8).span(12)
        .with_target(c.Query(counter_total(REJECTED), alias="$tag_gateway $col"))
        .unit("none").decimals(0).orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .thresholds(c.thresholds(c.ORANGE))
    )
    d = d.with_panel(
        c.time_series("Quarantined per interval",
                      "Refused inputs per interval, by reason (a reason's very first "
                      "rejection has no earlier total to compare with, so it shows in the "
                      "totals, not here).",
                      [c.Query(counter_increase(REJECTED), alias="$col")],
                      unit="none", decimals=0, bars=True, span=12)
    )
    d = d.with_panel(
        c.time_series("Duplicates dropped", "Uplinks stored once although they arrived again "
                      "(radio retransmissions, MQTT redeliveries, replays).",
                      [c.Query(counter_increase(ident("duplicates")), alias="$tag_gateway")],
                      unit="none", decimals=0, bars=True, span=12)
    )
    return c.to_dict(d)
