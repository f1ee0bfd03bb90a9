"""Plot detail: one plot in depth, for the farmer who wants to know why and the researcher.

Soil moisture and temperature per depth (the ``sensor`` tag: ``soil_10cm``, ``soil_30cm``)
show whether water reached the roots; air temperature with the dew point, humidity and the
vapour-pressure deficit show disease and stress weather; rain explains the soil curves.
Alerts of the plot are drawn on every graph as annotations from the ``alert`` measurement.
"""

from __future__ import annotations

from typing import Any, Final

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common as cm

from dashboards import common as c
from dashboards.crops import CropThresholds, air_temperature_steps, soil_moisture_steps
from dashboards.influxql import Select, agg, ident

UID: Final = "satoyama-plot-detail"
TITLE: Final = "Plot detail"
VARIABLES: Final = ("site", "plot", "node")


def alert_annotations() -> Select:
    """Every alert state change of the chosen plot: text = message, tags = rule etc."""
    return Select(
        [ident("message"), ident("state"), ident("value"), ident("rule"), ident("severity"),
         ident("node"), ident("sensor")],
        "alert", variables=("site", "plot"),
    )


def _by_depth(quantity: str) -> c.Query:
    return c.Query(Select([agg("mean", quantity)], "reading", variables=VARIABLES,
                          group_time="$__interval", group_tags=("node", "sensor"), fill="null"),
                   alias="$tag_node $tag_sensor")


def _per_node(quantity: str, *, function: str = "mean", fill: str = "null",
              ref_id: str = "A") -> c.Query:
    return c.Query(Select([agg(function, quantity)], "reading", variables=VARIABLES,
                          group_time="$__interval", group_tags=("node",), fill=fill),
                   alias=f"$tag_node {c.quantity(quantity).description.lower()}",
                   ref_id=ref_id)


def build(crop: CropThresholds) -> dict[str, Any]:
    soil_base, soil_steps = soil_moisture_steps(crop)
    air_base, air_steps = air_temperature_steps(crop)
    lines = cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE_AND_AREA)
    d = c.new_dashboard(
        UID, TITLE,
        "One plot in depth: soil water and temperature per depth, air temperature with dew "
        "point, humidity, vapour-pressure deficit and rain, with the plot's alerts marked.",
    ).time("now-7d", "now")
    d = d.with_variable(c.variable("site", multi=False))
    d = d.with_variable(c.variable("plot", multi=False))
    d = d.with_variable(c.variable("node"))
    d = d.annotation(c.Annotation(c.AlertAnnotation(
        "Alerts", alert_annotations().render(), text_column="message",
        tags_column="rule,severity,state,node,sensor", icon_color="red",
    )))

    d = d.with_panel(
        c.stat_panel(
            "Soil moisture now",
            f"Latest soil moisture per node and depth against the {crop.crop} thresholds.",
            [c.Query(Select([agg("last", "soil_moisture_pct")], "reading",
                            variables=VARIABLES, group_tags=("node", "sensor")),
                     alias="$tag_node $tag_sensor")],
            quantity_name="soil_moisture_pct", height=5,
        ).thresholds(c.thresholds(soil_base, soil_steps))
    )
    d = d.with_panel(
        c.time_series("Soil moisture by depth",
                      "Volumetric soil water per node and depth: a rise at 30 cm after one "
                      "at 10 cm means the water reached the roots.",
                      [_by_depth("soil_moisture_pct")], quantity_name="soil_moisture_pct",
                      span=12)
        .thresholds(c.thresholds(soil_base, soil_steps)).thresholds_style(lines)
    )
    d = d.with_panel(
        c.time_series("Soil temperature by depth",
                      "Soil temperature per node and depth; deeper soil swings less and later.",
                      [_by_depth("soil_temperature_c")], quantity_name="soil_temperature_c",
                      span=12)
    )
    d = d.with_panel(
        c.time_series("Air temperature and dew point",
                      "Air temperature and the derived dew point: when they meet, leaves get "
                      "wet (disease weather). Frost and heat lines from the crop preset.",
                      [_per_node("temperature_c"), _per_node("dew_point_c", ref_id="B")],
                      quantity_name="temperature_c", span=12)
        .thresholds(c.thresholds(air_base, air_steps)).thresholds_style(lines)
    )
    d = d.with_panel(
        c.time_series("Air humidity", "Mean relative humidity per node.",
                      [_per_node("humidity_pct")], quantity_name="humidity_pct", span=12)
    )
    d = d.with_panel(
        c.time_series("Vapour-pressure deficit",
                      "How strongly the air pulls water from leaves (derived from temperature "
                      "and humidity): low means wet foliage, high means water stress.",
                      [_per_node("vpd_kpa")], quantity_name="vpd_kpa", span=12)
    )
    d = d.with_panel(
        c.time_series("Rain", "Rain per interval (sum of the gauge's readings; an interval "
                      "without a reading is left empty, not shown as dry).",
                      [_per_node("rain_mm", function="sum", fill="none")], quantity_name="rain_mm",
                      span=12, bars=True)
    )
    return c.to_dict(d)
