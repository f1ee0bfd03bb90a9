"""Field-node simulator: realistic uplinks from hillside plots, with labelled faults.

Pure and deterministic: time is passed in, randomness comes from ``seed``. The same
``Simulator(...)`` run twice gives the same bytes. Each :class:`Emission` says what was
meant (node, seq, the values measured, the fault injected and the rejection reason the
decoders should report), so tests and ``satoyama simulate`` can check the whole path.

The weather is an autumn day on a terraced hillside farm in central Japan (Asia/Tokyo,
UTC+9): air temperature lowest before dawn and highest after 14:00, cooler higher up the
slope; humidity from a slowly wandering dew point (so it falls as the air warms); rain
spells that wet the topsoil and, less, the subsoil; topsoil drying by day; soil temperature
following the air with a damped, lagged swing; a battery that discharges and recharges
from a small solar panel in daytime.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Final, Literal

from . import reasons
from .frame import encode_frame
from .native import encode_native
from .reading_types import BY_QUANTITY, channel_for_sensor
from .rylr import encode_rylr_line

WireFormat = Literal["frame", "jsonl", "rylr", "mqtt"]
FaultKind = Literal[
    "garbage", "bad_crc", "truncated", "duplicate", "seq_gap", "clock_skew",
    "out_of_range", "counter_reset",
]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = (
    "garbage", "bad_crc", "truncated", "duplicate", "seq_gap", "clock_skew",
    "out_of_range", "counter_reset",
)
#: the rejection each damaging fault should produce, per wire format; other faults decode
#: to a packet and are for the pipeline (dedup, loss counting, clock policy, validation).
EXPECTED_REASON: Final[dict[str, dict[str, str]]] = {
    "frame": {"garbage": reasons.GARBAGE, "bad_crc": reasons.BAD_CRC,
              "truncated": reasons.TRUNCATED},
    "rylr": {"garbage": reasons.GARBAGE, "bad_crc": reasons.BAD_CRC,
             "truncated": reasons.TRUNCATED},
    "jsonl": {"garbage": reasons.BAD_JSON, "bad_crc": reasons.BAD_JSON,
              "truncated": reasons.BAD_JSON},
    # One native JSON body per MQTT message (no newline). MQTT has no CRC of ours: a
    # "bad CRC" becomes one flipped bit in a key (valid JSON, not the contract: schema).
    "mqtt": {"garbage": reasons.BAD_JSON, "bad_crc": reasons.SCHEMA,
             "truncated": reasons.BAD_JSON},
}
_STREAM_BREAKING: Final = frozenset({"garbage", "bad_crc", "truncated"})
_JSON_FORMATS: Final = frozenset({"jsonl", "mqtt"})
JST_OFFSET_S: Final = 9 * 3600
# The first deployment's crops (summer-autumn, hillside plots).
CROPS: Final = ("tomato", "strawberry", "green_pepper", "japanese_yam")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Probability of each fault per uplink (at most one fault per uplink; sum <= 1)."""

    garbage: float = 0.0
    bad_crc: float = 0.0
    truncated: float = 0.0
    duplicate: float = 0.0
    seq_gap: float = 0.0
    clock_skew: float = 0.0
    out_of_range: float = 0.0
    counter_reset: float = 0.0

    def __post_init__(self) -> None:
        values = [getattr(self, f.name) for f in fields(self)]
        if any(not 0.0 <= p <= 1.0 for p in values) or sum(values) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must be in [0, 1] and sum to at most 1")

    @classmethod
    def uniform(cls, probability: float) -> FaultPlan:
        """Every fault kind with the same probability (e.g. 0.02 -> 16% of uplinks)."""
        return cls(**{kind: probability for kind in FAULT_KINDS})

    def pick(self, u: float) -> FaultKind | None:
        """The fault for a uniform draw ``u`` in [0, 1)."""
        for kind in FAULT_KINDS:
            u -= getattr(self, kind)
            if u < 0:
                return kind
        return None


@dataclass(frozen=True, slots=True)
class Emission:
    """Bytes for the wire and what they were meant to carry."""

    data: bytes  # a frame, a native JSON line (with \n), an MQTT message's JSON body (no
    # newline) or an RYLR line (with \r\n)
    time_s: float
    node: str | None  # None for injected garbage
    seq: int | None
    fault: FaultKind | None
    expected: str | None  # rejection reason decoders should give; None = a packet
    readings: dict[tuple[str, str], float] = field(default_factory=dict)  # as sent
    battery_v: float | None = None
    node_time_s: int | None = None
    boot: bool = False


def _quantize(quantity: str, value: float) -> float:
    """The value as the frame's fixed-point type carries it (NaN stays NaN)."""
    if math.isnan(value):
        return value
    rt = BY_QUANTITY[quantity]
    raw = min(max(round(value * rt.divisor), rt.min_raw), rt.max_raw)
    return raw / rt.divisor


def _diurnal(hour: float) -> float:
    """-1 at 05:30, +1 at 14:00 local time: a slow rise and a long evening fall."""
    if 5.5 <= hour < 14.0:
        return -math.cos(math.pi * (hour - 5.5) / 8.5)
    since_peak = hour - 14.0 if hour >= 14.0 else hour + 10.0
    return math.cos(math.pi * since_peak / 15.5)


def _sun(hour: float) -> float:
    """0 at night, 1 at solar noon (autumn day, 06:00 to 17:20 JST)."""
    if 6.0 <= hour <= 17.33:
        return math.sin(math.pi * (hour - 6.0) / 11.33)
    return 0.0


@dataclass
class NodeModel:
    """One field node and the patch of ground it measures."""

    node_id: int
    plot: str
    crop: str
    elevation_m: float
    rng: random.Random
    depths_cm: tuple[int, ...] = (10, 30)
    has_clock: bool = True
    weather_station: bool = False
    seq: int = 0
    battery_v: float = 3.95
    soil_moisture: dict[int, float] = field(default_factory=dict)
    leaf_wetness: float = 0.0
    water_level_cm: float = 6.0
    _last_t: float | None = None
    _raining: bool = False
    _rain_rate: float = 0.0
    _temp_noise: float = 0.0
    _dew_offset: float = 0.0
    _cloud: float = 0.9

    @classmethod
    def create(cls, node_id: int, index: int, seed: int) -> NodeModel:
        rng = random.Random(f"satoyama-node:{seed}:{node_id}")
        crop = CROPS[index % len(CROPS)]
        model = cls(
            node_id=node_id,
            plot=f"terrace-{index // 2 + 1}",
            crop=crop,
            elevation_m=220.0 + 35.0 * index + rng.uniform(-10, 10),
            rng=rng,
            has_clock=index % 3 != 2,
            weather_station=index % 4 == 0,
            battery_v=rng.uniform(3.75, 4.1),
        )
        model.soil_moisture = {d: rng.uniform(24, 34) + d * 0.1 for d in model.depths_cm}
        return model

    def water(self, pct: float) -> None:
        """Someone waters the plot: the shallow soil gets ``pct`` points wetter."""
        for depth in self.depths_cm:
            if depth <= 15:
                self.soil_moisture[depth] = min(46.0, self.soil_moisture[depth] + pct)

    def _advance(self, t: float) -> float:
        """Step the slow state (rain, soil water, battery) to ``t``; return hours stepped."""
        dt_h = 0.0 if self._last_t is None else max(0.0, (t - self._last_t) / 3600.0)
        self._last_t = t
        rng = self.rng
        if dt_h == 0.0:
            return 0.0
        if self._raining:
            if rng.random() < 1 - math.exp(-0.15 * dt_h):
                self._raining = False
        elif rng.random() < 1 - math.exp(-0.01 * dt_h):
            self._raining = True
            self._rain_rate = rng.uniform(0.5, 6.0)
        keep = math.exp(-dt_h / 3.0)
        self._temp_noise = self._temp_noise * keep + rng.gauss(0, 0.4) * (1 - keep) ** 0.5
        self._dew_offset = self._dew_offset * keep + rng.gauss(0, 1.0) * (1 - keep) ** 0.5
        self._cloud = min(1.0, max(0.2, self._cloud + rng.gauss(0, 0.1) * dt_h ** 0.5))
        return dt_h

    def sample(self, t: float) -> tuple[dict[tuple[str, str], float], float]:
        """Readings ``{(quantity, sensor): value}`` and battery voltage at time ``t``."""
        dt_h = self._advance(t)
        rng = self.rng
        hour = ((t + JST_OFFSET_S) % 86400) / 3600.0
        mean = 16.0 - 0.006 * (self.elevation_m - 300.0) - (1.5 if self._raining else 0.0)
        swing = 3.0 if self._raining else 6.0
        x = _diurnal(hour)
        air = mean + swing * x + self._temp_noise
        dew = air - 0.4 if self._raining else min(air, mean - 5.0 + self._dew_offset)
        rh = 100.0 * math.exp(17.625 * dew / (243.04 + dew) - 17.625 * air / (243.04 + air))
        rh = min(100.0, max(20.0, rh + rng.gauss(0, 0.8)))
        sun = _sun(hour) * (0.25 if self._raining else self._cloud)
        radiation = 680.0 * sun
        rain = self._rain_rate * dt_h if self._raining else 0.0

        drying = max(0.0, _sun(hour)) * max(0.2, air / 18.0) * dt_h
        for depth in self.depths_cm:
            shallow = depth <= 15
            m = self.soil_moisture[depth]
            m -= (0.05 if shallow else 0.015) * drying
            m += rain * (0.35 if shallow else 0.12)
            irrigated = self.crop in ("tomato", "strawberry", "green_pepper")
            if shallow and irrigated and m < 21.0 and rng.random() < 0.2:
                m += rng.uniform(6.0, 10.0)  # irrigation
            self.soil_moisture[depth] = min(46.0, max(8.0, m))

        if self._raining or rh > 95.0:
            self.leaf_wetness = min(100.0, self.leaf_wetness + 40.0 * dt_h)
        else:
            self.leaf_wetness = max(0.0, self.leaf_wetness - (25.0 * sun + 3.0) * dt_h)
        self.water_level_cm = max(0.0, self.water_level_cm - 0.05 * dt_h + rain * 0.1)

        self.battery_v += (-0.0008 + 0.00005 * radiation) * dt_h
        self.battery_v = min(4.15, max(3.3, self.battery_v))

        readings: dict[tuple[str, str], float] = {
            ("temperature_c", "main"): air,
            ("humidity_pct", "main"): rh,
        }
        for depth in self.depths_cm:
            tag = f"soil_{depth}cm"
            damp, lag = (0.45, 3.0) if depth <= 15 else (0.12, 8.0)
            soil_t = mean + 1.5 + swing * damp * _diurnal((hour - lag) % 24.0)
            readings[("soil_moisture_pct", tag)] = self.soil_moisture[depth] + rng.gauss(0, 0.1)
            readings[("soil_temperature_c", tag)] = soil_t + rng.gauss(0, 0.05)
        if self.crop == "strawberry":  # leaf wetness: grey mould risk
            readings[("leaf_wetness_pct", "main")] = self.leaf_wetness
        if self.crop == "japanese_yam":  # a tank that feeds the drip line
            readings[("water_level_cm", "main")] = self.water_level_cm
        if self.weather_station:
            readings[("rain_mm", "main")] = rain
            readings[("wind_speed_ms", "main")] = max(0.0, rng.gammavariate(2.0, 1.1))
            readings[("pressure_hpa", "main")] = 1016.0 - self.elevation_m / 8.3 + self._dew_offset
            readings[("solar_radiation_wm2", "main")] = radiation
            readings[("illuminance_lux", "main")] = radiation * 110.0
        quantized = {key: _quantize(key[0], v) for key, v in readings.items()}
        battery = _quantize("battery_v", self.battery_v + rng.gauss(0, 0.004))
        return quantized, battery


class Simulator:
    """``nodes`` field nodes uplinking every ``interval_s`` from ``start_time_s``.

    Drive it with :meth:`run` (a number of rounds, timestamps from ``start_time_s``) or
    :meth:`tick` (one round at a time you choose, e.g. the wall clock in ``satoyama
    simulate``). ``keys`` maps node ids to HMAC keys for signed frames.
    """

    def __init__(
        self,
        nodes: int,
        seed: int,
        start_time_s: float,
        interval_s: float = 300.0,
        fmt: WireFormat = "frame",
        faults: FaultPlan | None = None,
        *,
        keys: Mapping[int, bytes] | None = None,
        first_node_id: int = 1,
        time_scale: float = 1.0,
    ) -> None:
        if fmt not in EXPECTED_REASON:
            raise ValueError(f"unknown wire format {fmt!r}")
        if interval_s <= 0 or nodes < 0:
            raise ValueError("interval_s must be positive and nodes non-negative")
        self.fmt: WireFormat = fmt
        self.start_time_s = start_time_s
        self.interval_s = interval_s
        self.faults = faults or FaultPlan()
        self.keys = dict(keys or {})
        # Weather and soil run time_scale times faster than the clock the frames carry
        # (`satoyama demo` shows a day of drying in minutes); timestamps stay real.
        self.time_scale = time_scale
        self.models = [NodeModel.create(first_node_id + i, i, seed) for i in range(nodes)]
        self._rng = random.Random(f"satoyama-faults:{seed}")
        self._after_truncation = False

    def run(self, rounds: int) -> Iterator[Emission]:
        for k in range(rounds):
            yield from self.tick(self.start_time_s + k * self.interval_s)

    def tick(self, now_s: float) -> list[Emission]:
        """One uplink from every node at ``now_s`` (plus injected garbage/duplicates)."""
        out: list[Emission] = []
        for model in self.models:
            out.extend(self._uplink(model, now_s))
        return out

    # -- one uplink ------------------------------------------------------------------------

    def _pick_fault(self) -> FaultKind | None:
        fault = self.faults.pick(self._rng.random())
        if self._after_truncation and fault in _STREAM_BREAKING and self.fmt != "mqtt":
            # a cut frame is only recognisable as such when a clean frame follows it (an
            # MQTT message has its own boundaries)
            fault = None
        self._after_truncation = fault == "truncated"
        return fault

    def _garbage(self) -> bytes:
        rng = self._rng
        n = rng.randint(1, 40)
        if self.fmt == "frame":  # no 0xA5, so no accidental sync word
            return bytes(rng.choice([b for b in range(256) if b != 0xA5]) for _ in range(n))
        letters = "abcdefghijklmnopqrstuvwxyz0123456789 ,.:"
        text = "~" + "".join(rng.choice(letters) for _ in range(n))
        return text.encode() + {"jsonl": b"\n", "mqtt": b""}.get(self.fmt, b"\r\n")

    def _uplink(self, model: NodeModel, t: float) -> list[Emission]:
        rng = self._rng
        readings, battery = model.sample(
            self.start_time_s + (t - self.start_time_s) * self.time_scale)
        fault = self._pick_fault()
        boot = False
        if fault == "seq_gap":
            model.seq += rng.randint(1, 5)
        elif fault == "counter_reset":
            model.seq = 0
            boot = True
        elif fault == "out_of_range":
            key = ("soil_moisture_pct", f"soil_{model.depths_cm[0]}cm")
            use_sentinel = self.fmt not in _JSON_FORMATS and rng.random() < 0.5
            readings[key] = math.nan if use_sentinel else 150.0
        seq = model.seq if self.fmt in _JSON_FORMATS else model.seq & 0xFFFF
        model.seq += 1
        node_time: int | None = None
        if model.has_clock or fault == "clock_skew":
            node_time = int(t)
            if fault == "clock_skew":  # a clock hours ahead, or an RTC that lost its time
                # and runs from its epoch: months behind. (Hours behind would pass for a
                # message that waited in a broker: validation.max_delivery_delay_s.)
                node_time += (rng.randint(3600, 12 * 3600) if rng.random() < 0.5
                              else -rng.randint(30, 400) * 86400)

        if self.fmt in _JSON_FORMATS:
            data = encode_native(
                f"n{model.node_id}", seq, readings,
                ts_ns=None if node_time is None else node_time * 1_000_000_000,
                battery_v=battery,
            ) + (b"\n" if self.fmt == "jsonl" else b"")
        else:
            data = encode_frame(
                model.node_id, seq,
                [(q, channel_for_sensor(tag) or 0, v) for (q, tag), v in readings.items()],
                battery_v=battery, node_time_s=node_time, key=self.keys.get(model.node_id),
                boot=boot,
            )
        data = self._damage(data, fault)
        if self.fmt == "rylr":
            rssi = -round(75 + model.elevation_m / 20 + rng.uniform(0, 25))
            snr = round(rng.uniform(-6.0, 10.0), 1)
            data = encode_rylr_line(data, model.node_id, rssi, snr)

        expected = EXPECTED_REASON[self.fmt].get(fault) if fault else None
        main = Emission(
            data=data, time_s=t, node=f"n{model.node_id}", seq=seq,
            fault=fault if fault != "garbage" else None,
            expected=expected if fault != "garbage" else None,
            readings=readings, battery_v=battery, node_time_s=node_time, boot=boot,
        )
        if fault == "garbage":
            junk = Emission(self._garbage(), t, None, None, "garbage", expected)
            return [junk, main]
        if fault == "duplicate":
            return [main, Emission(data, t, main.node, seq, "duplicate", None, readings,
                                   battery, node_time, boot)]
        return [main]

    def _damage(self, data: bytes, fault: FaultKind | None) -> bytes:
        """Corrupt an encoded frame or JSON body (before RYLR wrapping)."""
        rng = self._rng
        if fault == "bad_crc":
            if self.fmt == "mqtt":  # 'q' (0x71) with its low bit flipped: an unknown key
                return data.replace(b'"seq":', b'"sep":', 1)
            if self.fmt == "jsonl":
                return data.rstrip(b"\n")[:-1] + b"\n"  # drop the closing brace
            buf = bytearray(data)
            pos = rng.randrange(3, len(buf))  # not sync or LEN: one flipped bit after them
            buf[pos] ^= 1 << rng.randrange(8)
            return bytes(buf)
        if fault == "truncated":
            if self.fmt in _JSON_FORMATS:
                body = data.rstrip(b"\n")
                return body[: rng.randrange(1, len(body))] + data[len(body):]
            return data[: len(data) - rng.randint(1, len(data) - 3)]
        return data


@dataclass
class Tally:
    """What a run sent: messages, faults injected, and what a gateway should count.

    ``expected`` uses the gateway's counter names (``stored``, ``duplicates``,
    ``rejected.<reason>``, ``flagged.clock_skew_corrected``) and holds exactly for formats
    with one packet per message (``mqtt``; ``jsonl`` replayed line by line) received by a
    gateway with a trusted clock and the default ``clock.skew_policy: receive_time``. On a
    byte stream, garbage next to a damaged frame may be counted as one rejection.
    """

    messages: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)

    _first_of_pair: set[tuple[str | None, int | None]] = field(default_factory=set)

    def add(self, emission: Emission) -> None:
        self.messages += 1
        fault = emission.fault
        key = (emission.node, emission.seq)
        # an uplink with the "duplicate" fault is two emissions (both labelled so): the
        # first is stored, its copy counted as a duplicate
        copy = fault == "duplicate" and key in self._first_of_pair
        if fault is not None and not copy:
            self.faults[fault] = self.faults.get(fault, 0) + 1
        if fault == "duplicate" and not copy:
            self._first_of_pair.add(key)
            counts = ["stored"]
        elif copy:
            self._first_of_pair.discard(key)
            counts = ["duplicates"]
        elif emission.expected is not None:
            counts = [f"rejected.{emission.expected}"]
        else:
            counts = ["stored"]
            if fault == "out_of_range":  # stored without the bad value, which is quarantined
                counts.append("rejected.out_of_range")
            elif fault == "clock_skew":
                counts.append("flagged.clock_skew_corrected")
        for name in counts:
            self.expected[name] = self.expected.get(name, 0) + 1
