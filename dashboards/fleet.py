"""Fleet: the extension officer's screen. Every site, plot and node on one page.

Tables are sortable (click a header) and link each row into Plot detail. Nodes that went
quiet show as red cells in the uplinks-per-hour history; batteries and radio quality are
coloured by the ``common`` rule preset's battery and radio thresholds.
"""

from __future__ import annotations

from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import statushistory
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import common as c
from dashboards.crops import CropThresholds, battery_steps, rssi_steps
from dashboards.farm_overview import firing_count, latest_alerts
from dashboards.influxql import Select, agg, ident, literal, subquery

UID: Final = "satoyama-fleet"
TITLE: Final = "Fleet"
VARIABLES: Final = ("site", "plot")
NODE_TAGS: Final = ("site", "plot", "node")
LATEST_READINGS: Final = ("soil_moisture_pct", "temperature_c", "humidity_pct")
LATEST_DEVICE: Final = ("battery_v", "rssi_dbm", "snr_db", "packet_loss_pct")


def plot_link() -> db.DashboardLink:
    """Row link into Plot detail for the row's site and plot, keeping the time range."""
    from dashboards import plot_detail

    return (db.DashboardLink("Plot detail")
            .url(f"/d/{plot_detail.UID}?var-site=${{__data.fields.site}}"
                 "&var-plot=${__data.fields.plot}&${__url_time_range}")
            .type(dm.DashboardLinkType.LINK))


def alerts_per_plot() -> str:
    return subquery([f'count({ident("state")}) AS {ident("firing")}'], latest_alerts(VARIABLES),
                    where=[f"{ident('state')} = {literal('firing')}"],
                    group_tags=("site", "plot"))


def build(limits: CropThresholds) -> dict[str, Any]:
    battery_base, battery = battery_steps(limits)
    rssi_base, rssi = rssi_steps(limits)
    d = c.new_dashboard(
        UID, TITLE,
        "All sites, plots and nodes: latest values, firing alerts, nodes that went quiet, "
        "batteries and radio quality. Rows link into Plot detail.",
    )
    for key in VARIABLES:
        d = d.with_variable(c.variable(key))

    d = d.with_panel(
        c.stat_panel("Alerts firing per site", "Alerts whose latest state is firing.",
                     [c.Query(firing_count(VARIABLES), alias="$tag_site")],
                     unit="none", decimals=0, height=4)
        .thresholds(c.thresholds(c.GREEN, [(1, c.RED)])).no_value("0")
    )
    readings = c.table_panel(
        "Latest readings per node",
        "Latest value of each main quantity per node (any depth). Click a site or plot to "
        "open Plot detail.",
        [c.Query(Select([agg("last", q) for q in LATEST_READINGS], "reading",
                        variables=VARIABLES, group_tags=NODE_TAGS), table_format=True)],
        height=9,
    ).override_by_name("Time", c.column(display="Latest"))
    for q in LATEST_READINGS:
        readings = readings.override_by_name(q, c.column(q, c.axis_label(q)))
    for tag in ("site", "plot"):
        readings = readings.override_by_name(tag, [dm.DynamicConfigValue(
            id_val="links", value=[plot_link().build()])])
    d = d.with_panel(readings)

    devices = c.table_panel(
        "Devices",
        "Per node: when it was last heard from, battery, radio signal and packet loss. "
        "Sort by a column to find the weakest.",
        [c.Query(Select([agg("last", q) for q in LATEST_DEVICE], "device",
                        variables=VARIABLES, group_tags=NODE_TAGS), table_format=True)],
        height=9,
    ).override_by_name("Time", c.column(display="Last seen"))
    devices = devices.override_by_name(
        "snr_db", c.column("snr_db", "SNR")
    ).override_by_name(
        # packet_loss_pct is computed by the gateway, not a catalogue quantity
        "packet_loss_pct", c.column(display="Packet loss", unit="percent")
    ).override_by_name("battery_v", [
        *c.column("battery_v", "Battery"),
        dm.DynamicConfigValue(id_val="thresholds",
                              value=c.thresholds(battery_base, battery).build()),
        dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
    ]).override_by_name("rssi_dbm", [
        *c.column("rssi_dbm", "RSSI"),
        dm.DynamicConfigValue(id_val="thresholds",
                              value=c.thresholds(rssi_base, rssi).build()),
        dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
    ])
    d = d.with_panel(devices)

    d = d.with_panel(
        c.table_panel("Alerts firing per plot", "Count of firing alerts per site and plot.",
                      [c.Query(alerts_per_plot(), table_format=True)], height=6)
    )
    d = d.with_panel(
        statushistory.Panel().title("Uplinks per hour")
        .description("Device points received per node and hour. Red: nothing heard in that "
                     "hour (the node is offline or out of radio range).")
        .datasource(c.DATASOURCE).height(10).span(24).show_value(cm.VisibilityMode.AUTO)
        .with_target(c.Query(Select([f'count({ident("seq")}) AS {ident("uplinks")}'],
                                    "device", variables=VARIABLES, group_time="1h",
                                    group_tags=NODE_TAGS, fill="0"),
                             alias="$tag_site $tag_plot $tag_node"))
        .unit("none").decimals(0)
        .thresholds(c.thresholds(c.RED, [(1, c.ORANGE), (6, c.GREEN)]))
    )
    return c.to_dict(d)
