"""Farm overview: the farmer's phone screen. Is each plot OK, what needs water, what alerts.

Mobile first: every panel is full width, so a phone shows them one under another in the
order that matters: soil moisture now (red = water), active alerts, then the day's curves,
then when each node was last heard from.
"""

from __future__ import annotations

from typing import Any, Final

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common as cm

from dashboards import common as c
from dashboards.crops import CropThresholds, air_temperature_steps, soil_moisture_steps
from dashboards.influxql import Select, agg, ident, literal, subquery

UID: Final = "satoyama-farm-overview"
TITLE: Final = "Farm overview"
VARIABLES: Final = ("site", "plot")
ALERT_TAGS: Final = ("site", "plot", "node", "sensor", "rule", "severity")


# An alert writes a point only when its state changes, so one that began firing before
# the dashboard's range has its latest state further back: look back this far, whatever
# the range (the "Alerts firing" panels mean "now", not "during the range").
ALERT_LOOKBACK: Final = "time > now() - 30d"


def latest_alerts(variables: tuple[str, ...]) -> Select:
    """Each alert series' latest state, value and message (over ALERT_LOOKBACK)."""
    return Select(
        [agg("last", "state"), agg("last", "value"), agg("last", "message")],
        "alert", variables=variables, group_tags=ALERT_TAGS, time_filter=False,
        where=[ALERT_LOOKBACK],
    )


def firing_alerts(variables: tuple[str, ...]) -> str:
    """Alerts whose latest state is ``firing`` (a resolved one drops out)."""
    return subquery([ident("value"), ident("message")], latest_alerts(variables),
                    where=[f"{ident('state')} = {literal('firing')}"], group_tags=ALERT_TAGS)


def firing_count(variables: tuple[str, ...]) -> str:
    return subquery([f'count({ident("state")}) AS {ident("firing")}'], latest_alerts(variables),
                    where=[f"{ident('state')} = {literal('firing')}"], group_tags=("site",))


def last_seen(variables: tuple[str, ...]) -> Select:
    """One row per node: the time of its latest device point and its battery then."""
    return Select([agg("last", "battery_v")], "device", variables=variables,
                  group_tags=("site", "plot", "node"))


def build(crop: CropThresholds) -> dict[str, Any]:
    soil_base, soil_steps = soil_moisture_steps(crop)
    air_base, air_steps = air_temperature_steps(crop)
    d = c.new_dashboard(
        UID, TITLE,
        f"Each plot at a glance: soil moisture against the {crop.crop} thresholds, active "
        "alerts, air temperature and humidity, and when each node was last heard from.",
    )
    for key in VARIABLES:
        d = d.with_variable(c.variable(key))

    d = d.with_panel(
        c.stat_panel(
            "Soil moisture now",
            f"Latest soil moisture per plot and depth. Red: below the {crop.crop} refill "
            "point, water soon. Blue: wetter than field capacity.",
            [c.Query(Select([agg("last", "soil_moisture_pct")], "reading",
                            variables=VARIABLES, group_tags=("site", "plot", "sensor")),
                     alias="$tag_plot $tag_sensor")],
            quantity_name="soil_moisture_pct", height=6,
        ).thresholds(c.thresholds(soil_base, soil_steps))
    )
    d = d.with_panel(
        c.stat_panel(
            "Active alerts",
            "Alerts whose latest state is firing, per site.",
            [c.Query(firing_count(VARIABLES), alias="$tag_site")],
            unit="none", decimals=0, height=4,
        ).thresholds(c.thresholds(c.GREEN, [(1, c.RED)])).no_value("0")
        .color_mode(cm.BigValueColorMode.BACKGROUND)
    )
    d = d.with_panel(
        c.table_panel(
            "Alerts firing",
            "What is wrong and where: the rule, its severity, the value that triggered it.",
            [c.Query(firing_alerts(VARIABLES), table_format=True)], height=6,
        ).no_value("No alert is firing")
    )
    d = d.with_panel(
        c.time_series(
            "Soil moisture",
            "Mean soil moisture per plot and depth; the shaded band below the line is the "
            "refill zone.",
            [c.Query(Select([agg("mean", "soil_moisture_pct")], "reading", variables=VARIABLES,
                            group_time="$__interval", group_tags=("site", "plot", "sensor"),
                            fill="null"),
                     alias="$tag_plot $tag_sensor")],
            quantity_name="soil_moisture_pct",
        ).thresholds(c.thresholds(soil_base, soil_steps))
        .thresholds_style(_threshold_lines())
    )
    d = d.with_panel(
        c.time_series(
            "Air temperature",
            f"Mean air temperature per plot, with the {crop.crop} frost and heat lines.",
            [c.Query(Select([agg("mean", "temperature_c")], "reading", variables=VARIABLES,
                            group_time="$__interval", group_tags=("site", "plot"),
                            fill="null"),
                     alias="$tag_plot")],
            quantity_name="temperature_c",
        ).thresholds(c.thresholds(air_base, air_steps)).thresholds_style(_threshold_lines())
    )
    d = d.with_panel(
        c.time_series(
            "Air humidity",
            "Mean relative humidity per plot.",
            [c.Query(Select([agg("mean", "humidity_pct")], "reading", variables=VARIABLES,
                            group_time="$__interval", group_tags=("site", "plot"),
                            fill="null"),
                     alias="$tag_plot")],
            quantity_name="humidity_pct", height=7,
        )
    )
    d = d.with_panel(
        c.table_panel(
            "Last seen",
            "When each node was last heard from (oldest first) and its battery then.",
            [c.Query(last_seen(VARIABLES), table_format=True)], height=7,
        ).sort_by([cb.TableSortByFieldState().display_name("Last seen").desc(False)])
        .override_by_name("Time", c.column(display="Last seen"))
        .override_by_name("battery_v", c.column("battery_v", "Battery"))
    )
    return c.to_dict(d)


def _threshold_lines() -> cb.GraphThresholdsStyleConfig:
    return cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE_AND_AREA)
