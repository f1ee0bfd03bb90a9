"""Device health: are the field nodes themselves well? Battery, radio, packet loss, last seen.

Packet loss is the gateway's ``packet_loss_pct``: the share of sequence numbers missing
over the node's recent window (a gap in ``seq`` is a lost uplink), so it rises before a
node goes silent.
"""

from __future__ import annotations

from typing import Any, Final

from dashboards import common as c
from dashboards.crops import CropThresholds, battery_steps, rssi_steps
from dashboards.fleet import NODE_TAGS
from dashboards.influxql import Select, agg, ident

UID: Final = "satoyama-device-health"
TITLE: Final = "Device health"
VARIABLES: Final = ("site", "plot", "node")


def _device(fieldname: str, function: str = "mean") -> c.Query:
    return c.Query(Select([agg(function, fieldname)], "device", variables=VARIABLES,
                          group_time="$__interval", group_tags=("site", "node"), fill="null"),
                   alias="$tag_site $tag_node")


def build(limits: CropThresholds) -> dict[str, Any]:
    d = c.new_dashboard(
        UID, TITLE,
        "Field nodes: battery trend, radio signal (RSSI, SNR), packet loss from sequence "
        "gaps, uplinks received and when each node was last heard from.",
    ).time("now-7d", "now")
    d = d.with_variable(c.variable("site", measurement="device"))
    d = d.with_variable(c.variable("plot", measurement="device"))
    d = d.with_variable(c.variable("node", measurement="device"))

    d = d.with_panel(
        c.time_series("Battery", "Battery voltage per node: a solar node charges by day; a "
                      "falling daily peak means the panel or the cell is failing.",
                      [_device("battery_v")], quantity_name="battery_v", span=12)
        .thresholds(c.thresholds(*battery_steps(limits)))
    )
    d = d.with_panel(
        c.time_series("Packet loss", "Share of uplinks missing from the sequence numbers over "
                      "each node's recent window.",
                      [_device("packet_loss_pct", "max")], unit="percent", decimals=1, span=12)
        .thresholds(c.thresholds(c.GREEN, [(5, c.ORANGE), (20, c.RED)]))
    )
    d = d.with_panel(
        c.time_series("Signal strength (RSSI)", "Received signal strength at the gateway.",
                      [_device("rssi_dbm")], quantity_name="rssi_dbm", span=12)
        .thresholds(c.thresholds(*rssi_steps(limits)))
    )
    d = d.with_panel(
        c.time_series("Signal-to-noise ratio (SNR)", "Below about -7 dB LoRa starts to lose "
                      "packets at common spreading factors.",
                      [_device("snr_db")], quantity_name="snr_db", span=12)
    )
    d = d.with_panel(
        c.time_series("Uplinks received", "Device points stored per node and interval.",
                      [c.Query(Select([f'count({ident("seq")}) AS {ident("uplinks")}'],
                                      "device", variables=VARIABLES, group_time="$__interval",
                                      group_tags=("site", "node"), fill="0"),
                               alias="$tag_site $tag_node")],
                      unit="none", decimals=0, bars=True)
    )
    d = d.with_panel(
        c.table_panel(
            "Last seen",
            "Each node's latest device point: its time, battery, signal and loss.",
            [c.Query(Select([agg("last", f) for f in ("battery_v", "rssi_dbm", "snr_db",
                                                      "packet_loss_pct")],
                            "device", variables=VARIABLES, group_tags=NODE_TAGS),
                     table_format=True)],
        ).override_by_name("Time", c.column(display="Last seen"))
        .override_by_name("battery_v", c.column("battery_v", "Battery"))
        .override_by_name("rssi_dbm", c.column("rssi_dbm", "RSSI"))
        .override_by_name("snr_db", c.column("snr_db", "SNR"))
        .override_by_name("packet_loss_pct", c.column(display="Packet loss", unit="percent"))
    )
    return c.to_dict(d)
