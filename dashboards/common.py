"""What every Satoyama dashboard shares: the datasource, InfluxQL targets, variables,
units from the sensor catalogue and a few panel shapes.

Dashboards refer to the datasource by the uid that provisioning gives it
(``dashboards/provisioning/datasources/influxdb.yaml``) and that ``satoyama dashboards
publish`` creates when missing, so the same JSON works in the compose stack and on any
Grafana the publish command prepared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import Select, tag_values
from gateway.catalogue import BY_NAME, Quantity

DATASOURCE_UID: Final = "satoyama-influxdb"
DATASOURCE_TYPE: Final = "influxdb"
DATASOURCE: Final = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
FOLDER_UID: Final = "satoyama"
FOLDER_TITLE: Final = "Satoyama"
TIMEZONE: Final = "Asia/Tokyo"  # DESIGN.md: display in the site's zone, default Asia/Tokyo
TAGS: Final = ["satoyama"]

# Colours by meaning, so a farmer learns them once.
RED: Final = "red"
GREEN: Final = "green"
BLUE: Final = "blue"
ORANGE: Final = "orange"


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target as Grafana's InfluxDB plugin stores it (``rawQuery: true``).

    The SDK has no InfluxDB query type; this is the JSON the plugin's raw editor writes.
    """

    def __init__(self, ref_id: str, query: str, result_format: str = "time_series",
                 alias: str | None = None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


class Query(cogbuilder.Builder[InfluxQLQuery]):
    def __init__(self, query: str | Select, *, ref_id: str = "A", table_format: bool = False,
                 alias: str | None = None) -> None:
        self._query = InfluxQLQuery(ref_id, str(query),
                                    "table" if table_format else "time_series", alias)

    def build(self) -> InfluxQLQuery:
        return self._query


class AlertAnnotation(dm.AnnotationQuery):
    """An InfluxDB annotation query: the plugin reads ``target`` as an InfluxQL query with
    the columns that give each event its text and tags."""

    def __init__(self, name: str, query: str, *, text_column: str, tags_column: str,
                 icon_color: str) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, hide=False,
                         icon_color=icon_color, built_in=None)
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        out = super().to_json()
        out["target"] = {
            "fromAnnotations": True,
            "query": self.query,
            "rawQuery": True,
            "refId": "Anno",
            "tagsColumn": self.tags_column,
            "textColumn": self.text_column,
            "textEditor": True,
        }
        return out


class Annotation(cogbuilder.Builder[dm.AnnotationQuery]):
    def __init__(self, annotation: AlertAnnotation) -> None:
        self._annotation = annotation

    def build(self) -> dm.AnnotationQuery:
        return self._annotation


# --------------------------------------------------------------------------- variables

ALL: Final = dm.VariableOption(selected=True, text="All", value="$__all")

# Which tags narrow which: plot values depend on the chosen site, node values on both.
VARIABLE_FILTERS: Final[dict[str, tuple[str, ...]]] = {
    "site": (),
    "plot": ("site",),
    "node": ("site", "plot"),
    "gateway": (),
}


def variable(key: str, *, multi: bool = True, measurement: str = "reading",
             label: str | None = None) -> db.QueryVariable:
    """A site/plot/node variable from ``SHOW TAG VALUES``; multi-value ones default to All."""
    v = (
        db.QueryVariable(key)
        .label(label or key.capitalize())
        .datasource(DATASOURCE)
        .query(tag_values(measurement, key, VARIABLE_FILTERS[key]))
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        v = v.current(ALL)
    return v


# --------------------------------------------------------------------------- units


def quantity(name: str) -> Quantity:
    return BY_NAME[name]


def axis_label(name: str) -> str:
    """``Soil moisture (%)``: the catalogue's description and unit."""
    q = BY_NAME[name]
    return f"{q.description} ({q.unit})"


def thresholds(base: str, steps: Sequence[tuple[float, str]] = ()) -> db.ThresholdsConfig:
    """Absolute thresholds: ``base`` colour below the first step."""
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=None, color=base)]
        + [dm.Threshold(value=value, color=color) for value, color in steps]
    )


# --------------------------------------------------------------------------- panels


def time_series(title: str, description: str, queries: Sequence[Query], *,
                quantity_name: str | None = None, unit: str | None = None,
                decimals: int | None = None, height: int = 8, span: int = 24,
                bars: bool = False) -> timeseries.Panel:
    """A time series; unit and decimals from the catalogue when ``quantity_name`` is given."""
    p = (
        timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
        .height(height).span(span)
        .line_width(1).fill_opacity(10 if not bars else 80).show_points(
            cm.VisibilityMode.NEVER).span_nulls(False)
        .legend(timeseries_legend())
    )
    if bars:
        p = p.draw_style(cm.GraphDrawStyle.BARS)
    p = _units(p, quantity_name, unit, decimals)
    for q in queries:
        p = p.with_target(q)
    return p


def timeseries_legend() -> Any:
    from grafana_foundation_sdk.builders import common as cb

    return (cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM).show_legend(True))


def stat_panel(title: str, description: str, queries: Sequence[Query], *,
               quantity_name: str | None = None, unit: str | None = None,
               decimals: int | None = None, height: int = 5, span: int = 24) -> stat.Panel:
    """Big last values, one per series; coloured by thresholds."""
    p = (
        stat.Panel().title(title).description(description).datasource(DATASOURCE)
        .height(height).span(span)
        .graph_mode(cm.BigValueGraphMode.AREA).color_mode(cm.BigValueColorMode.BACKGROUND)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(_reduce_last())
    )
    p = _units(p, quantity_name, unit, decimals)
    for q in queries:
        p = p.with_target(q)
    return p


def _reduce_last() -> Any:
    from grafana_foundation_sdk.builders import common as cb

    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def table_panel(title: str, description: str, queries: Sequence[Query], *,
                height: int = 8, span: int = 24) -> table.Panel:
    p = (
        table.Panel().title(title).description(description).datasource(DATASOURCE)
        .height(height).span(span).filterable(True)
    )
    for q in queries:
        p = p.with_target(q)
    return p


def _units(p: Any, quantity_name: str | None, unit: str | None, decimals: int | None) -> Any:
    if quantity_name is not None:
        q = BY_NAME[quantity_name]
        p = p.unit(q.grafana_unit).decimals(q.decimals if decimals is None else decimals)
    elif unit is not None:
        p = p.unit(unit)
        if decimals is not None:
            p = p.decimals(decimals)
    return p


def column(quantity_name: str | None = None, display: str | None = None, unit: str | None = None
           ) -> list[dm.DynamicConfigValue]:
    """Override properties for one table column: the catalogue's unit and decimals for a
    quantity (or an explicit Grafana unit), and a display name."""
    props = []
    if quantity_name is not None:
        q = BY_NAME[quantity_name]
        props.append(dm.DynamicConfigValue(id_val="unit", value=q.grafana_unit))
        props.append(dm.DynamicConfigValue(id_val="decimals", value=q.decimals))
    elif unit is not None:
        props.append(dm.DynamicConfigValue(id_val="unit", value=unit))
    if display is not None:
        props.append(dm.DynamicConfigValue(id_val="displayName", value=display))
    return props


# --------------------------------------------------------------------------- dashboard


def new_dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title).uid(uid).description(description).tags(TAGS)
        .timezone(TIMEZONE).time("now-24h", "now").refresh("1m")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR).readonly()
    )


def to_dict(dashboard: db.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data, panels numbered in order (stable ids)."""
    model = dashboard.build()
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return data
