"""Readings as CSV for researchers: one row per (time, node, sensor), one column per quantity.

Column names are the catalogue's canonical names, which carry their unit
(``soil_moisture_pct``, ``soil_ec_ms_cm``); provenance columns say where each row came from
and how its time was obtained (``time_source``: node, gateway, reanchored, held, replay).
Times are UTC, ISO 8601 with nanoseconds, as stored. The same columns as Parquet:
gateway/export_parquet.py; per-site sharing and pseudonyms: gateway/export_privacy.py.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final

from gateway.catalogue import BY_NAME, READING_FIELDS
from gateway.store.sqlite import Store

PROVENANCE: Final = ("seq", "time_source", "source", "format", "received")


def iso_ns(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def parse_time(text: str) -> int:
    """ISO 8601 date or date-time (naive means UTC) -> ns since the epoch."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def header() -> list[str]:
    return ["time", "site", "plot", "node", "sensor", *READING_FIELDS, *PROVENANCE]


def units_row() -> list[str]:
    """Optional second header row with display units, for spreadsheet users."""
    return ["UTC", "", "", "", "", *(BY_NAME[f].unit for f in READING_FIELDS),
            *("" for _ in PROVENANCE)]


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str], *, with_units: bool = False) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header())
    if with_units:
        writer.writerow(units_row())
    n = 0
    for row in rows:
        writer.writerow([
            iso_ns(row["time_ns"]), row["site"], row["plot"], row["node"], row["sensor"],
            *("" if row.get(f) is None else _fmt(row[f], f) for f in READING_FIELDS),
            "" if row["seq"] is None else row["seq"], row["time_source"], row["source"],
            row["format"], iso_ns(row["received_ns"]),
        ])
        n += 1
    return n


def export_value(value: float, quantity: str) -> float:
    """A reading as exported (CSV and Parquet alike): two digits past the catalogue's
    display precision, which keeps the sensor's resolution and drops float noise."""
    return round(value, BY_NAME[quantity].decimals + 2)


def _fmt(value: float, quantity: str) -> str:
    # repr of the rounded float: shortest exact text, no 6-digit cut-off as with :g
    return repr(export_value(value, quantity))


def readings(
    store: Store,
    *,
    site: str | None = None,
    plot: str | None = None,
    node: str | None = None,
    time_from: str | None = None,
    time_to: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows to export, in time order (each a dict with the keys of :func:`header`,
    times as ns: ``time_ns``, ``received_ns``)."""
    return store.iter_readings(
        site=site, plot=plot, node=node,
        time_from_ns=parse_time(time_from) if time_from else None,
        time_to_ns=parse_time(time_to) if time_to else None,
    )


def export_csv(store: Store, out: IO[str], *, with_units: bool = False, **where: Any) -> int:
    return write_csv(readings(store, **where), out, with_units=with_units)
