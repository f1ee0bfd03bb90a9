"""The sensor catalogue: one entry per physical quantity Satoyama knows.

Every other part reads this table: validation takes its plausible ranges, decoders map
device field names through its aliases, the SQLite store and InfluxDB take their field
names from it, exports put its units in their headers and dashboards take their units
from it. Adding a quantity is adding one entry here.

Ranges are *physically plausible* limits for a hillside farm sensor, not agronomic
thresholds: a value outside them is a broken sensor or a decoding error, never weather.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Measurement = Literal["reading", "device"]


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str  # canonical name, unit in the name (soil_moisture_pct)
    unit: str  # display unit (Grafana unit id lives in grafana_unit)
    description: str
    minimum: float
    maximum: float
    measurement: Measurement = "reading"
    aliases: tuple[str, ...] = ()
    grafana_unit: str = "none"
    derived: bool = False
    decimals: int = 2
    # A running total (a counter that only grows until it restarts from 0): the store keeps
    # it as the device said and derives ``increment`` (rain since the previous reading)
    # from consecutive totals of one node and sensor (gateway/store/counters.py).
    increment: str | None = None
    # Largest believable increase per hour of ``increment`` (the jump check in
    # gateway/derive.py counter_increase); None: only the increment's own range applies.
    max_increase_per_h: float | None = None


QUANTITIES: Final[tuple[Quantity, ...]] = (
    Quantity("temperature_c", "°C", "Air temperature", -40.0, 60.0,
             aliases=("temperature", "temp", "temperature_C", "air_temperature", "tempc"),
             grafana_unit="celsius"),
    Quantity("humidity_pct", "%", "Relative humidity of the air", 0.0, 100.0,
             aliases=("humidity", "rh", "relative_humidity", "hum"), grafana_unit="humidity"),
    Quantity("soil_moisture_pct", "%", "Volumetric soil water content", 0.0, 100.0,
             aliases=("soil_moisture", "moisture", "soilmoisture", "vwc", "soil_vwc",
                      "water_SOIL"),
             grafana_unit="percent"),
    Quantity("soil_temperature_c", "°C", "Soil temperature", -30.0, 70.0,
             aliases=("soil_temperature", "soil_temp", "soiltemp", "temp_SOIL"),
             grafana_unit="celsius"),
    Quantity("soil_ec_ms_cm", "mS/cm", "Soil electrical conductivity", 0.0, 20.0,
             aliases=("soil_ec", "ec", "conductivity"), grafana_unit="none", decimals=3),
    Quantity("illuminance_lux", "lx", "Illuminance", 0.0, 200_000.0,
             aliases=("illuminance", "light", "lux", "light_lux"), grafana_unit="lux",
             decimals=0),
    Quantity("rain_mm", "mm", "Rain since the previous reading", 0.0, 500.0,
             aliases=("rain", "rainfall", "precipitation"), grafana_unit="lengthmm",
             decimals=1),
    # 1,000,000 mm is 100 years of the wettest places on Earth: a bigger "total" is a
    # decoding error. 400 mm/h is above the world's 1-hour record (about 305 mm in 42 min,
    # Holt, Missouri, 1947; 401 mm in 1 h, Shangdi, 1975).
    Quantity("rain_total_mm", "mm", "Rain gauge running total, as the device counts it",
             0.0, 1_000_000.0,
             aliases=("rain_total", "total_rain", "rainfall_total", "rain_counter",
                      "precipitation_total"),
             grafana_unit="lengthmm", increment="rain_mm", max_increase_per_h=400.0),
    Quantity("rain_rate_mm_h", "mm/h", "Rain rate (the device's estimate)", 0.0, 2000.0,
             aliases=("rain_rate", "rainrate", "precipitation_rate"), grafana_unit="none",
             decimals=1),
    Quantity("wind_speed_ms", "m/s", "Wind speed", 0.0, 75.0,
             aliases=("wind_speed", "wind_avg_m_s", "windspeed"), grafana_unit="velocityms"),
    Quantity("pressure_hpa", "hPa", "Air pressure (station level)", 500.0, 1100.0,
             aliases=("pressure", "baro", "pressure_hPa"), grafana_unit="pressurehpa",
             decimals=1),
    Quantity("leaf_wetness_pct", "%", "Leaf wetness", 0.0, 100.0,
             aliases=("leaf_wetness", "leafwetness"), grafana_unit="percent"),
    Quantity("water_level_cm", "cm", "Water level (paddy, channel, tank)", -100.0, 1000.0,
             aliases=("water_level", "level"), grafana_unit="lengthcm", decimals=1),
    Quantity("solar_radiation_wm2", "W/m²", "Global solar radiation", 0.0, 1600.0,
             aliases=("solar_radiation", "solarradiation", "radiation"),
             grafana_unit="Wm2", decimals=1),
    Quantity("dew_point_c", "°C", "Dew point (derived)", -80.0, 60.0,
             grafana_unit="celsius", derived=True),
    Quantity("vpd_kpa", "kPa", "Vapour-pressure deficit (derived)", 0.0, 10.0,
             grafana_unit="pressurekpa", derived=True, decimals=3),
    # Device health: written to the `device` measurement, not `reading`.
    Quantity("battery_v", "V", "Node battery voltage", 0.0, 15.0, measurement="device",
             aliases=("battery", "bat", "vbat", "battery_voltage"), grafana_unit="volt",
             decimals=3),
    Quantity("rssi_dbm", "dBm", "Received signal strength", -150.0, 0.0,
             measurement="device", aliases=("rssi",), grafana_unit="dBm", decimals=0),
    Quantity("snr_db", "dB", "Signal-to-noise ratio", -30.0, 30.0, measurement="device",
             aliases=("snr", "lsnr"), grafana_unit="dB", decimals=1),
)

BY_NAME: Final[dict[str, Quantity]] = {q.name: q for q in QUANTITIES}
READING_FIELDS: Final[tuple[str, ...]] = tuple(
    q.name for q in QUANTITIES if q.measurement == "reading"
)
MEASURED_READING_FIELDS: Final[tuple[str, ...]] = tuple(
    q.name for q in QUANTITIES if q.measurement == "reading" and not q.derived
)
# seq and packet_loss_pct are device fields the gateway computes, not sensor quantities.
DEVICE_FIELDS: Final[tuple[str, ...]] = (
    *(q.name for q in QUANTITIES if q.measurement == "device"),
    "seq",
    "packet_loss_pct",
)
#: running total -> the increment quantity derived from it (rain_total_mm -> rain_mm)
COUNTERS: Final[dict[str, str]] = {q.name: q.increment for q in QUANTITIES if q.increment}
_ALIASES: Final[dict[str, str]] = {
    alias.lower(): q.name for q in QUANTITIES for alias in (q.name, *q.aliases)
}


def canonical_name(name: str) -> str | None:
    """The canonical quantity for a device field name or alias, or None if unknown."""
    return _ALIASES.get(name.lower())


@dataclass(frozen=True, slots=True)
class RangeViolation:
    quantity: str
    value: float
    minimum: float
    maximum: float

    def __str__(self) -> str:
        return f"{self.quantity}={self.value:g} outside [{self.minimum:g}, {self.maximum:g}]"


def check_range(quantity: str, value: float) -> RangeViolation | None:
    q = BY_NAME[quantity]
    if not q.minimum <= value <= q.maximum:
        return RangeViolation(quantity, value, q.minimum, q.maximum)
    return None




_UNIT_SUFFIXES: Final = ("_mm_h", "_ms_cm", "_wm2", "_pct", "_lux", "_hpa", "_kpa", "_dbm",
                         "_mm", "_ms", "_cm", "_db", "_c", "_v")


def label(name: str) -> str:
    """The quantity's name without its unit suffix: ``soil_ec_ms_cm`` -> ``soil_ec``."""
    for suffix in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
