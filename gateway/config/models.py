"""The typed settings model: every key a Satoyama config file may hold.

One model, validated once at start. Every section refuses unknown keys, so a typo is an
error with a hint instead of a silently ignored setting. Field descriptions are the
reference documentation (``docs/configuration.md`` is generated from them) and a field's
``hint`` (in ``json_schema_extra``) is shown with any error about that field.

Validators here are pure: they never touch the file system. Checks that need the disk
(rule files, TLS files, secret files) live in :mod:`gateway.config.loader`.
"""

from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Mapping, Set
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.catalogue import BY_NAME, canonical_name
from gateway.config.base import DocType, Name, all_errors, config_error, raise_all
from gateway.config.base import Section as _Section
from gateway.config.base import check_timezone as _check_timezone
from gateway.config.base import hint as _hint
from gateway.config.base import quoted_or as _quoted_or
from gateway.config.export import ExportConfig
from gateway.config.notifications import NotificationsConfig

ENV_PREFIX = "SATOYAMA_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_TIMEZONE = "Asia/Tokyo"
DEFAULT_MQTT_TOPIC = "satoyama/+/+/up"
SQLITE_FILENAME = "satoyama.db"
MIN_NODE_KEY_BYTES = 16


# --------------------------------------------------------------------------- names


def _check_quantity(value: str) -> str:
    if value in BY_NAME:
        return value
    close = difflib.get_close_matches(value, list(BY_NAME), n=3, cutoff=0.6)
    alias_of = canonical_name(value)
    if alias_of is not None and alias_of not in close:
        close.insert(0, alias_of)
    hint = f"did you mean {_quoted_or(close)}? " if close else ""
    raise config_error(
        f"{value!r} is not a quantity in the sensor catalogue",
        hint + "known quantities: " + ", ".join(BY_NAME),
    )


QuantityName = Annotated[str, AfterValidator(_check_quantity)]


# --------------------------------------------------------------------------- sources


class SerialSourceConfig(_Section):
    """A radio receiver on a serial port."""

    port: str = Field(
        description="Serial device of the radio receiver, e.g. /dev/ttyUSB0 or a stable "
        "/dev/serial/by-id/... path.",
        min_length=1,
        json_schema_extra=_hint("prefer /dev/serial/by-id/... so the path survives replugging"),
    )
    baudrate: int = Field(default=115200, gt=0, description="Line speed in baud.")
    format: Literal["frame", "jsonl", "rylr"] = Field(
        default="frame",
        description="What the receiver writes: `frame` (Satoyama binary frames), `jsonl` "
        "(one native JSON uplink per line) or `rylr` (REYAX RYLR `+RCV=` lines).",
        json_schema_extra=_hint(
            "frame for Satoyama receiver firmware, rylr for a REYAX RYLR module, "
            "jsonl for one JSON uplink per line"
        ),
    )
    reopen_interval_s: float = Field(
        default=2.0, gt=0, description="Seconds between attempts to reopen a vanished port."
    )


class TlsConfig(_Section):
    """TLS for the MQTT connection. Relative paths are resolved against the config file."""

    ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed the broker's certificate (default: system CAs).",
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate (with `key_file`)."
    )
    key_file: Path | None = Field(
        default=None, description="Private key of the client certificate."
    )
    insecure: bool = Field(
        default=False,
        description="Skip certificate verification. Only for testing against a broker with "
        "a self-signed certificate.",
    )

    @model_validator(mode="after")
    def _cert_needs_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise config_error(
                "cert_file and key_file go together",
                "a client certificate needs its private key; set both or neither",
                fields=(missing,),
            )
        return self


_TOPIC_LEVEL_BAD = re.compile(r"[+#]")


def _check_topic_filter(topic: str) -> str:
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if level == "#" and i != len(levels) - 1:
            raise config_error(
                f"{topic!r}: '#' must be the last topic level", "e.g. satoyama/# or satoyama/+/+/up"
            )
        if level not in ("+", "#") and _TOPIC_LEVEL_BAD.search(level):
            raise config_error(
                f"{topic!r}: '+' and '#' must fill a whole topic level", "e.g. satoyama/+/+/up"
            )
    if topic.startswith("$share/"):
        raise config_error(
            f"{topic!r}: give the plain topic here",
            "set sources.mqtt.shared_group instead of writing $share/ yourself",
        )
    return topic


TopicFilter = Annotated[str, Field(min_length=1), AfterValidator(_check_topic_filter)]

#: Payload formats of MQTT messages (gateway.sources.mqtt_formats.MESSAGE_FORMATS).
MqttFormat = Literal["native", "ttn", "chirpstack", "rtl433"]
#: LoRaWAN payload codecs (firmware_bridge.lorawan.codecs.CODECS; a test keeps them equal).
PayloadCodec = Literal["cayenne-lpp", "milesight-em500-smtc", "milesight-em300-th",
                       "decentlab-dl-5tm", "decentlab-dl-smtp", "dragino-lse01"]
_CODEC_FORMATS: Final = ("ttn", "chirpstack")


class MqttTopicConfig(_Section):
    """One subscription of `sources.mqtt.topics` written as a mapping."""

    topic: TopicFilter = Field(
        description="Topic filter, e.g. `v3/+/devices/+/up`.",
        json_schema_extra=_hint("e.g. v3/+/devices/+/up or application/+/device/+/event/+"),
    )
    format: MqttFormat | None = Field(
        default=None,
        description="Payload format of the messages on this filter (default: the "
        "section's `format`).",
        json_schema_extra=_hint(
            "native for Satoyama nodes, ttn for The Things Stack v3, chirpstack for "
            "ChirpStack v4, rtl433 for rtl_433 -F mqtt"
        ),
    )
    codec: PayloadCodec | None = Field(
        default=None,
        description="ttn/chirpstack only: decode the LoRaWAN payload bytes with this codec "
        "instead of using the server's decoded object (docs/formats.md); a device's own "
        "`devices.<node>.codec` (found by its DevEUI) comes first.",
        json_schema_extra=_hint(
            "the device model on this topic, e.g. milesight-em500-smtc or cayenne-lpp"
        ),
    )


def _topic_entry(value: object) -> object:
    """A plain filter string is the mapping ``{topic: <filter>}`` with the section's format.
    Its problems are reported at the list item (``topics[1]``), where the user wrote it."""
    if isinstance(value, str):
        if not value:
            raise config_error("a topic filter must not be empty", "e.g. satoyama/+/+/up")
        return {"topic": _check_topic_filter(value)}
    return value


TopicEntry = Annotated[MqttTopicConfig, BeforeValidator(_topic_entry),
                       DocType("string or mapping")]


def _covers(wide: str, narrow: str) -> bool:
    """Whether every topic the filter ``narrow`` matches is matched by ``wide`` too."""
    wide_levels, narrow_levels = wide.split("/"), narrow.split("/")
    for i, level in enumerate(wide_levels):
        if level == "#":
            return True
        if i >= len(narrow_levels):
            return False
        other = narrow_levels[i]
        if other == "#" or (level != "+" and (other == "+" or other != level)):
            return False
    return len(wide_levels) == len(narrow_levels)


class MqttSourceConfig(_Section):
    """Uplinks from an MQTT broker (native JSON, LoRaWAN servers, rtl_433, ...)."""

    url: str = Field(
        description="Broker address, `mqtt://host:port` or `mqtts://host:port` (TLS). The "
        "port defaults to 1883 / 8883.",
        json_schema_extra=_hint("e.g. mqtt://localhost:1883 or mqtts://broker.example.org:8883"),
    )
    topics: list[TopicEntry] = Field(
        # A plain string, validated into an entry (and shown as such in the reference).
        default_factory=lambda: [DEFAULT_MQTT_TOPIC],  # type: ignore[arg-type]
        min_length=1,
        description="Topic filters to subscribe to, on one connection: a filter string "
        "(its messages are in the section's `format`) or a mapping `{topic, format, codec}` "
        "for messages in another format (docs/formats.md).",
        json_schema_extra=_hint(
            'e.g. topics: ["satoyama/+/+/up", {topic: "v3/+/devices/+/up", format: ttn}]'
        ),
    )
    username: str | None = Field(default=None, description="Broker user name.")
    password: SecretStr | None = Field(default=None, description="Broker password (secret).")
    password_file: Path | None = Field(
        default=None,
        description="File holding the broker password (e.g. a Docker secret); "
        "instead of `password`.",
    )
    tls: TlsConfig | None = Field(
        default=None,
        description="TLS settings; `mqtts://` without this section uses the system CAs.",
    )
    client_id: str | None = Field(
        default=None, description="MQTT client id (default: generated from gateway_id)."
    )
    shared_group: str | None = Field(
        default=None,
        description="Subscribe as `$share/<group>/<topic>` (MQTT v5 shared subscription) so "
        "several gateways split the load.",
        json_schema_extra=_hint("a plain name such as 'satoyama-ingest', without '/', '+', '#'"),
    )
    qos: Literal[0, 1, 2] = Field(default=1, description="Subscription QoS; 1 gives at-least-once.")
    format: MqttFormat = Field(
        default="native",
        description="Payload format of the topics given as plain strings: `native` (the "
        "Satoyama JSON uplink on `satoyama/<site>/<node>/up`, docs/mqtt.md), `ttn` (The "
        "Things Stack v3 uplinks), `chirpstack` (ChirpStack v4 events) or `rtl433` "
        "(`rtl_433 -F mqtt` events); see docs/formats.md.",
        json_schema_extra=_hint(
            "native for Satoyama nodes, ttn for The Things Stack v3, chirpstack for "
            "ChirpStack v4, rtl433 for rtl_433 -F mqtt"
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise config_error(
                f"{url!r} is not an mqtt:// or mqtts:// URL",
                "e.g. mqtt://localhost:1883 or mqtts://broker.example.org:8883",
            )
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise config_error(f"{url!r} has an invalid port", "ports are 1-65535") from None
        if not parts.hostname:
            raise config_error(f"{url!r} has no host name", "e.g. mqtt://localhost:1883")
        return url

    @field_validator("shared_group")
    @classmethod
    def _check_group(cls, group: str | None) -> str | None:
        if group is not None and (not group or re.search(r"[/+#]", group)):
            raise config_error(
                f"{group!r} is not a valid shared subscription group",
                "a plain name without '/', '+' or '#'",
            )
        return group

    @model_validator(mode="after")
    def _consistent(self) -> MqttSourceConfig:
        """The checks across keys, all reported at once (not one more after each fix)."""
        raise_all(type(self).__name__, [*self._password_twice(), *self._codecs_off_lorawan(),
                                         *self._shadowed_topics()])
        return self

    def _password_twice(self) -> list[PydanticCustomError]:
        if self.password is None or self.password_file is None:
            return []
        return [config_error("set either password or password_file, not both",
                             "password_file suits Docker/systemd secrets",
                             fields=("password_file",))]

    def _codecs_off_lorawan(self) -> list[PydanticCustomError]:
        problems = []
        for i, entry in enumerate(self.topics):
            fmt = entry.format or self.format
            if entry.codec is not None and fmt not in _CODEC_FORMATS:
                problems.append(config_error(
                    f"codec {entry.codec!r} is for LoRaWAN payloads, but topic "
                    f"{entry.topic!r} is in format {fmt!r}",
                    "set format: ttn or format: chirpstack on this topic, or remove codec",
                    fields=(("topics", i, "codec"),),
                ))
        return problems

    def _shadowed_topics(self) -> list[PydanticCustomError]:
        # A message takes the format of the first filter it matches: a later entry whose
        # every topic an earlier filter already matches would never apply.
        problems = []
        for i, later in enumerate(self.topics):
            for j, earlier in enumerate(self.topics[:i]):
                decodes_alike = ((later.format or self.format, later.codec)
                                 == (earlier.format or self.format, earlier.codec))
                if not decodes_alike and _covers(earlier.topic, later.topic):
                    problems.append(config_error(
                        f"{later.topic!r} never applies: every topic it matches is matched "
                        f"first by topics[{j}] {earlier.topic!r}",
                        "a message takes the format of the first filter it matches: put the "
                        "narrower filter first",
                        fields=(("topics", i),),
                    ))
                    break  # one earlier filter is reason enough
        return problems

    @property
    def topic_filters(self) -> list[str]:
        """The plain topic filters, in the order given."""
        return [entry.topic for entry in self.topics]

    @property
    def topic_formats(self) -> list[tuple[str, str, str | None]]:
        """(filter, payload format, codec) of every subscription, in the order given."""
        return [(e.topic, e.format or self.format, e.codec) for e in self.topics]

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.uses_tls else 1883)

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts" or self.tls is not None

    @property
    def subscriptions(self) -> list[str]:
        """The topic filters to subscribe to, with the ``$share/<group>/`` prefix if any."""
        if self.shared_group is None:
            return self.topic_filters
        return [f"$share/{self.shared_group}/{t}" for t in self.topic_filters]


class HttpSourceConfig(_Section):
    """Uploads POSTed over HTTP by an Ecowitt gateway or console ("customized" upload,
    Ecowitt protocol; docs/formats.md)."""

    host: str = Field(
        description="Address to listen on: this machine's LAN address (e.g. 192.168.1.20), "
        "`0.0.0.0` for every interface, or `127.0.0.1` for uploads from this machine only. "
        "No default: the Ecowitt gateway is on the LAN, and listening there is a choice.",
        min_length=1,
        json_schema_extra=_hint(
            "e.g. host: 0.0.0.0 (every interface) or this machine's LAN address; the "
            "weather gateway must be able to reach it"
        ),
    )
    port: int = Field(
        default=8080, ge=0, le=65535,
        description="TCP port; the same number goes into the app's upload settings "
        "(0: any free port, for tests).",
    )
    path: str = Field(
        default="/data/report/",
        description="URL path the gateway posts to (the app's `Path`); a trailing slash "
        "is optional. Other paths get 404.",
        pattern=r"^/[^?#\s]*$",
        json_schema_extra=_hint("start with '/', e.g. /data/report/"),
    )
    stations: list[str] | None = Field(
        default=None,
        description="If set, only uploads whose `PASSKEY` (or `MAC`) is listed are stored "
        "(any case); others are quarantined as `unknown_station` and answered 403. "
        "`satoyama replay --format ecowitt` with this config applies the same list.",
    )
    max_body_bytes: int = Field(
        default=16384, gt=0, le=1_048_576,
        description="Largest body taken; a longer one is answered 413 unread. The same "
        "limit holds for `satoyama replay --format ecowitt` (a longer line, its ending "
        "aside, is quarantined as `bad_form`).",
    )
    timeout_s: float = Field(
        default=10.0, gt=0,
        description="Longest a client may take to send its request (and each read), so a "
        "stuck client cannot hold a thread.",
    )
    commit_timeout_s: float = Field(
        default=30.0, gt=0,
        description="Longest a request waits for its data to be committed before it is "
        "answered 503 (the data is still stored when the pipeline gets to it).",
    )


class SourcesConfig(_Section):
    serial: SerialSourceConfig | None = Field(
        default=None, description="Radio receiver on a serial port; leave out if there is none."
    )
    mqtt: MqttSourceConfig | None = Field(
        default=None, description="MQTT broker to take uplinks from; leave out if there is none."
    )
    http: HttpSourceConfig | None = Field(
        default=None, description="HTTP endpoint for Ecowitt weather/soil station uploads; "
        "leave out if there is none."
    )


# --------------------------------------------------------------------------- sinks


class SqliteSinkConfig(_Section):
    """The local store on the gateway's own disk (always on: it is also the outbox)."""

    path: Path | None = Field(
        default=None, description="Database file (default `<data_dir>/satoyama.db`)."
    )
    max_size_mb: int = Field(default=2048, gt=0, description="Size bound of the database in MiB.")
    full_policy: Literal["drop_oldest", "stop_ingest"] = Field(
        default="drop_oldest",
        description="At the size bound: `drop_oldest` deletes the oldest readings, "
        "`stop_ingest` refuses new ones (sources stop acknowledging).",
        json_schema_extra=_hint(
            "drop_oldest keeps the gateway running on a small SD card; "
            "stop_ingest never loses stored history"
        ),
    )
    retention_days: int = Field(
        default=0,
        ge=0,
        description="Delete readings older than this many days; 0 keeps them forever.",
    )


class InfluxDBSinkConfig(_Section):
    """An InfluxDB to write readings to (1.x, 2.x, 3.x or Cloud)."""

    url: str = Field(
        description="Base URL of the InfluxDB HTTP API, e.g. http://localhost:8086.",
        json_schema_extra=_hint(
            "e.g. http://localhost:8086 or https://eu-central-1-1.aws.cloud2.influxdata.com"
        ),
    )
    api: Literal["v1", "v2"] = Field(
        default="v2",
        description="Write API: `v2` (`/api/v2/write`; InfluxDB 2.x, 3.x, Cloud) or `v1` "
        "(`/write`; InfluxDB 1.x).",
        json_schema_extra=_hint("use v2 for InfluxDB 2.x/3.x, v1 for InfluxDB 1.x"),
    )
    org: str | None = Field(default=None, description="Organisation (api v2, required there).")
    bucket: str | None = Field(default=None, description="Bucket (api v2, required there).")
    database: str | None = Field(default=None, description="Database (api v1, required there).")
    token: SecretStr | None = Field(
        default=None,
        description="API token (secret; required for api v2 unless `token_file` is set).",
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding the API token (e.g. a Docker secret); instead of `token`.",
    )
    batch_size: int = Field(default=5000, gt=0, description="Most points per write request.")
    flush_interval_s: float = Field(default=1.0, gt=0, description="Longest wait before a write.")
    enabled: bool = Field(default=True, description="Set false to keep the section but not write.")
    separate_process: bool = Field(
        default=False,
        description="Run this sink in a process of its own, on another core than the MQTT "
        "reader and the pipeline: more messages per second on a multi-core machine, for "
        "about 27 MB more memory (docs/influxdb.md).",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise config_error(
                f"{url!r} is not an http:// or https:// URL", "e.g. http://localhost:8086"
            )
        return url

    @model_validator(mode="wrap")
    @classmethod
    def _api_needs(cls, data: Any, handler: ModelWrapValidatorHandler[InfluxDBSinkConfig]
                   ) -> InfluxDBSinkConfig:
        """What the chosen api needs, checked with the other keys' errors: check-config
        reports a missing org, bucket and token, and a mistyped url, in one go, not one
        more each time the user fixes one."""
        try:
            section = handler(data)
        except ValidationError as exc:
            if not isinstance(data, Mapping):
                raise
            failed = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            raise all_errors(cls.__name__, exc.errors(),
                             _influx_needs(data, unsure=failed)) from None
        raise_all(cls.__name__, _influx_needs(dict(section)))
        return section


_V2_TARGET_HINT = ("InfluxDB 2.x/3.x writes go to an org and a bucket; for InfluxDB 1.x set "
                   "api: v1 and database")
_V1_TARGET_HINT = ("InfluxDB 1.x writes go to a database; for InfluxDB 2.x/3.x set api: v2, "
                   "org and bucket")
_TOKEN_HINT = ("set token_file, or the environment variable SATOYAMA_SINKS__INFLUXDB__TOKEN; "
               "keep tokens out of config files")


def _influx_needs(given: Mapping[str, Any], unsure: Set[str] = frozenset()
                  ) -> list[PydanticCustomError]:
    """Every problem of what ``sinks.influxdb`` ``given`` holds for its api: a token given
    twice, keys the api needs left out. ``unsure``: keys whose values did not validate
    (their own errors say why): not said to be missing, and an api or enabled among them
    is not guessed at."""
    problems = _token_twice(given)
    if "api" not in unsure:
        problems += _targets_missing(given, unsure) + _token_missing(given, unsure)
    return problems


def _token_twice(given: Mapping[str, Any]) -> list[PydanticCustomError]:
    if given.get("token") is None or given.get("token_file") is None:
        return []
    return [config_error("set either token or token_file, not both",
                         "token_file suits Docker/systemd secrets", fields=("token_file",))]


def _targets_missing(given: Mapping[str, Any], unsure: Set[str]) -> list[PydanticCustomError]:
    """Where the api writes to: org and bucket (v2) or database (v1)."""
    api = given.get("api", "v2")
    needed = ("org", "bucket") if api == "v2" else ("database",)
    missing = tuple(f for f in needed if f not in unsure and not given.get(f))
    if not missing:
        return []
    return [config_error(f"required when api is {api}",
                         _V2_TARGET_HINT if api == "v2" else _V1_TARGET_HINT, fields=missing)]


def _token_missing(given: Mapping[str, Any], unsure: Set[str]) -> list[PydanticCustomError]:
    """The token api v2 needs to write, unless the sink is switched off."""
    if given.get("api", "v2") != "v2" or unsure & {"enabled", "token", "token_file"}:
        return []
    if not _BOOL.validate_python(given.get("enabled", True)):  # "false" from the environment
        return []
    if given.get("token") is not None or given.get("token_file") is not None:
        return []
    return [config_error("required when api is v2", _TOKEN_HINT, fields=("token",))]


_BOOL: Final = TypeAdapter(bool)


class MqttAlertsConfig(_Section):
    """Alert transitions published on the broker of `sources.mqtt` (docs/alerts.md)."""

    enabled: bool = Field(
        default=True,
        description="Publish every alert transition, retained, on "
        "`satoyama/<site>/alerts/<rule>/<node>/<sensor>`; needs `sources.mqtt`.",
    )
    max_in_flight: int = Field(
        default=1000, gt=0, le=60000,
        description="Most publishes waiting for the broker's acknowledgement.",
    )


class SinksConfig(_Section):
    sqlite: SqliteSinkConfig = Field(
        default_factory=lambda: SqliteSinkConfig(),
        description="The local SQLite store (always on).",
    )
    influxdb: InfluxDBSinkConfig | None = Field(
        default=None, description="InfluxDB to forward readings to; leave out if there is none."
    )
    mqtt_alerts: MqttAlertsConfig = Field(
        default_factory=lambda: MqttAlertsConfig(),
        description="Alert transitions on MQTT, for Node-RED, Home Assistant or a valve "
        "controller.",
    )


# --------------------------------------------------------------------------- behaviour


class ValidationConfig(_Section):
    """How readings are judged before they are stored."""

    max_clock_skew_s: float = Field(
        default=300.0,
        gt=0,
        description="A node timestamp further than this from the gateway clock is skewed.",
    )
    max_delivery_delay_s: float = Field(
        default=7 * 86400.0,
        ge=0,
        description="An MQTT message's node time up to this far in the past is a message "
        "that waited (in the broker's session while the gateway was down, or in a network "
        "server), not a wrong clock: stored at its own time, counted "
        "`flagged.delivered_late`. 0: the skew limit applies to MQTT too.",
        json_schema_extra=_hint("a week: a farm gateway can be off a weekend or more"),
    )
    skew_policy: Literal["receive_time", "quarantine"] = Field(
        default="receive_time",
        description="What to do with a skewed timestamp: `receive_time` stores the reading "
        "at the time it was received (flagged), `quarantine` keeps it out of storage.",
        json_schema_extra=_hint("receive_time keeps the data; quarantine keeps the history clean"),
    )
    dedup_window_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long a (node, seq) or (node, timestamp) is remembered to drop "
        "duplicates and replays.",
    )


class ClockConfig(_Section):
    """Whether the gateway's own clock can be trusted."""

    require_sync: bool = Field(
        default=False,
        description="Hold readings until the system clock is synchronised (NTP). Turn on "
        "for a Raspberry Pi without RTC, whose clock starts in the past after a power cut.",
    )
    not_before: date = Field(
        default=date(2026, 1, 1),
        description="A wall clock earlier than this date is never trusted.",
        json_schema_extra=_hint("a date in YYYY-MM-DD form"),
    )


class PipelineConfig(_Section):
    """The bounded queue between the sources and storage."""

    queue_size: int = Field(
        default=2000,
        gt=0,
        description="Messages (an MQTT read's batch counts as its messages) or serial reads "
        "the ingest queue holds; sources wait (backpressure) when it is full. An MQTT "
        "broker keeps what waits (docs/mqtt.md), so a longer queue costs memory, not loss.",
    )
    batch_max: int = Field(
        default=500, gt=0, description="Most readings committed per transaction."
    )
    batch_interval_ms: int = Field(default=200, gt=0, description="Longest wait to fill a batch.")


# --------------------------------------------------------------------------- devices


class SensorConfig(_Section):
    """One sensor (channel or probe depth) of a node."""

    depth_cm: int | None = Field(default=None, ge=0, description="Probe depth below ground in cm.")
    quantities: list[QuantityName] | None = Field(
        default=None, description="Catalogue quantities this sensor measures."
    )
    description: str | None = Field(default=None, description="Free text.")


class CalibrationConfig(_Section):
    """A linear correction applied as ``value * scale + offset``."""

    offset: float = Field(default=0.0, description="Added after scaling, in the quantity's unit.")
    scale: float = Field(default=1.0, description="Multiplier; must not be 0.")

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, scale: float) -> float:
        if scale == 0:
            raise config_error(
                "scale 0 would flatten every reading to the offset", "use 1 for no scaling"
            )
        return scale

    def apply(self, value: float) -> float:
        return value * self.scale + self.offset


def _check_key_hex(key: SecretStr | None) -> SecretStr | None:
    # Messages never show the key itself.
    if key is None:
        return None
    text = key.get_secret_value().strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise config_error(
            "node key is not a hex string",
            "write the key as hex digits, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_hex(16))'`",
        ) from None
    if len(raw) < MIN_NODE_KEY_BYTES:
        raise config_error(
            f"node key is {len(raw)} bytes; at least {MIN_NODE_KEY_BYTES} are needed",
            f"use {MIN_NODE_KEY_BYTES * 2} or more hex digits "
            "(secrets.token_hex(16) gives 16 bytes)",
        )
    return SecretStr(text.lower())


EXTERNAL_ID_SCHEMES: Final = ("lorawan", "rtl433", "ecowitt")
_DEV_EUI: Final = re.compile(r"^[0-9a-f]{16}$")
#: The node an unregistered LoRaWAN device is stored under (firmware_bridge.lorawan.common).
_EUI_NODE: Final = re.compile(r"^eui-([0-9a-f]{16})$")


def _check_external_id(value: str) -> str:
    """``scheme:id`` of a node in a third-party format, lower-case: every scheme's ids are
    matched without regard to case (a DevEUI, an Ecowitt PASSKEY, an rtl_433 hex id typed
    from a label), so the registry keeps one spelling and decoders look up ``ident.lower()``."""
    scheme, sep, ident = value.partition(":")
    if not sep or scheme not in EXTERNAL_ID_SCHEMES or not ident.strip():
        raise config_error(
            f"{value!r} is not a `scheme:id` device identity",
            "schemes: " + ", ".join(EXTERNAL_ID_SCHEMES)
            + " (e.g. lorawan:a84041000181c61f, rtl433:Fineoffset-WH51/0d2f1a)",
        )
    if scheme == "lorawan":
        ident = ident.strip().lower().replace("-", "").replace(":", "")
        if not _DEV_EUI.match(ident):
            raise config_error(
                f"{value!r}: a LoRaWAN DevEUI is 16 hex digits",
                "copy it from the network server's device page, e.g. lorawan:a84041000181c61f",
            )
    return f"{scheme}:{ident.lower()}"


class DeviceConfig(_Section):
    """One field node in the device registry."""

    site: Name | None = Field(
        default=None, description="Site of the node (default: the top-level `site`)."
    )
    plot: Name = Field(
        default="unassigned", description="Plot (field, terrace, greenhouse) the node is in."
    )
    crop: str | None = Field(
        default=None, description="What grows there; rules use it for presets."
    )
    sensors: dict[Name, SensorConfig] | None = Field(
        default=None, description="Sensors by tag (`main`, `soil_10cm`, ...)."
    )
    calibration: dict[QuantityName, CalibrationConfig] = Field(
        default_factory=dict,
        description="Per-quantity correction (`value * scale + offset`) by catalogue name.",
    )
    key: Annotated[SecretStr | None, AfterValidator(_check_key_hex)] = Field(
        default=None,
        description="HMAC key for authenticated frames, hex, at least 16 bytes (secret).",
        json_schema_extra=_hint(
            'write it quoted (key: "8f3a...") so YAML keeps it a string; '
            "generate one with `python -c 'import secrets; "
            "print(secrets.token_hex(16))'`"
        ),
    )
    ids: list[Annotated[str, AfterValidator(_check_external_id)]] = Field(
        default_factory=list,
        description="Identities this node has in third-party formats, as `scheme:id`: "
        "`lorawan:<DevEUI>` (16 hex digits), `rtl433:<model>/<id>[/<channel>]`, "
        "`ecowitt:<station>/<channel>`. A message from one of them is stored under this "
        "node's name (docs/formats.md). LoRaWAN devices are found by DevEUI only, never "
        "by the network server's device name; unregistered ones are `eui-<deveui>` (a "
        "TTS device without a DevEUI: `ttn:<application_id>:<device_id>`).",
        json_schema_extra=_hint(
            'e.g. ids: ["lorawan:a84041000181c61f"] or ids: ["rtl433:Fineoffset-WH51/0d2f1a"]'
        ),
    )
    codec: PayloadCodec | None = Field(
        default=None,
        description="LoRaWAN payload codec of this device (`ttn`/`chirpstack` formats): "
        "its payload bytes are decoded with it, before a topic's `codec` and instead of "
        "the server's decoded object (docs/formats.md). Needs the device's "
        "`lorawan:<DevEUI>` in `ids` (or the node name `eui-<deveui>`).",
        json_schema_extra=_hint("the device model, e.g. milesight-em500-smtc or dragino-lse01"),
    )
    description: str | None = Field(default=None, description="Free text.")

    def calibrate(self, quantity: str, value: float) -> float:
        """The calibrated value of one reading (unchanged if the quantity has none)."""
        cal = self.calibration.get(quantity)
        return value if cal is None else cal.apply(value)

    def key_bytes(self) -> bytes | None:
        return None if self.key is None else bytes.fromhex(self.key.get_secret_value())


# --------------------------------------------------------------------------- settings


class Settings(BaseModel):
    """Everything the gateway is configured with.

    Build it with :func:`gateway.config.load_settings` (a YAML file plus ``SATOYAMA_``
    environment overrides, ``__`` between nested keys) or
    :func:`gateway.config.default_settings`. Constructing it directly reads nothing from
    the environment: the loader applies environment overrides itself, so that every
    override can be named in an error message. (A plain model, not pydantic-settings'
    BaseSettings: the loader did all of its work, and importing it cost the gateway
    process 13 MB of memory.)
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    site: Name = Field(
        description="Name of the farm or site; the `site` tag of every reading.",
        json_schema_extra=_hint("e.g. site: kamiyama-terraces"),
    )
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        default=DEFAULT_TIMEZONE, description="IANA time zone for display, summaries and schedules."
    )
    data_dir: Path = Field(
        default=Path("./data"),
        description="Directory for the database and state (relative to the working directory).",
    )
    gateway_id: Name = Field(
        default_factory=socket.gethostname,
        description="Name of this gateway in its own metrics (default: the host name).",
    )
    sources: SourcesConfig = Field(
        default_factory=lambda: SourcesConfig(), description="Where readings come from."
    )
    sinks: SinksConfig = Field(
        default_factory=lambda: SinksConfig(), description="Where readings are stored."
    )
    validation: ValidationConfig = Field(
        default_factory=lambda: ValidationConfig(), description="Checks on incoming readings."
    )
    clock: ClockConfig = Field(
        default_factory=lambda: ClockConfig(), description="Trust in the gateway's clock."
    )
    pipeline: PipelineConfig = Field(
        default_factory=lambda: PipelineConfig(), description="Queue and batching."
    )
    rules: list[Path] = Field(
        default_factory=list,
        description="Alert rule files; relative paths are resolved against the directory "
        "of the config file.",
    )
    notifications: NotificationsConfig = Field(
        default_factory=lambda: NotificationsConfig(),
        description="Who is told about alerts, how and when (docs/alerts.md).",
    )
    devices: dict[Name, DeviceConfig] = Field(
        default_factory=dict,
        description="Device registry: node name to its site, plot, crop, sensors, "
        "calibration and key. Nodes not listed are stored under plot `unassigned`.",
    )
    export: ExportConfig = Field(
        default_factory=lambda: ExportConfig(),
        description="Which sites `satoyama export` may hand out, as stored or under "
        "pseudonyms (farm data belongs to farmers).",
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.sinks.sqlite.path is None:
            self.sinks.sqlite.path = self.data_dir / SQLITE_FILENAME
        for device in self.devices.values():
            if device.site is None:
                device.site = self.site
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """The checks across sections, all reported at once (not one more after each fix)."""
        raise_all(type(self).__name__, [*self._ids_given_twice(),
                                         *self._lorawan_nodes_by_deveui(),
                                         *self._alerts_need_a_broker()])
        return self

    def _ids_given_twice(self) -> list[PydanticCustomError]:
        problems = []
        seen: dict[str, str] = {}  # ids are lower-case (_check_external_id): case aside
        for node, device in self.devices.items():
            for ident in device.ids:
                if ident in seen and seen[ident] != node:
                    problems.append(config_error(
                        f"device identity {ident!r} is given to both {seen[ident]!r} and "
                        f"{node!r}",
                        "one radio device is one node: keep the identity on one of them",
                        fields=(f"devices.{node}.ids",),
                    ))
                else:
                    seen[ident] = node
        return problems

    def _lorawan_nodes_by_deveui(self) -> list[PydanticCustomError]:
        # LoRaWAN uplinks find their node by DevEUI only (docs/formats.md "Node names"):
        # the registry's lorawan: id, else the name eui-<deveui>. Refuse what would put
        # two devices under one node, or a codec no uplink can reach.
        problems = []
        for node, device in self.devices.items():
            euis = [i.removeprefix("lorawan:") for i in device.ids if i.startswith("lorawan:")]
            named = _EUI_NODE.match(node)
            if named and euis and named.group(1) not in euis:
                problems.append(config_error(
                    f"node {node!r} is the name DevEUI {named.group(1)} is stored under "
                    f"when not registered, but its ids give it lorawan:{euis[0]}: both "
                    "devices would be stored as one node",
                    f"give the node its own name (e.g. the plot's), or add "
                    f"lorawan:{named.group(1)} if it is that device",
                    fields=(f"devices.{node}.ids",),
                ))
            if device.codec is not None and not euis and not named:
                problems.append(config_error(
                    f"codec {device.codec!r} is for LoRaWAN uplinks, which reach a node by "
                    f"DevEUI, but node {node!r} has no lorawan: id (the network server's "
                    "device name is not used: it is unique only within an application)",
                    "add ids: [\"lorawan:<DevEUI>\"], the 16 hex digits on the network "
                    "server's device page",
                    fields=(f"devices.{node}.codec",),
                ))
        return problems

    def _alerts_need_a_broker(self) -> list[PydanticCustomError]:
        # Only when asked for explicitly: the default (on) simply has nothing to do.
        if (
            "mqtt_alerts" in self.sinks.model_fields_set
            and self.sinks.mqtt_alerts.enabled
            and self.sources.mqtt is None
        ):
            return [config_error(
                "sinks.mqtt_alerts is enabled but there is no sources.mqtt broker",
                "alerts are published on the broker of sources.mqtt; configure it, or set "
                "sinks.mqtt_alerts.enabled: false",
                fields=("sinks",),
            )]
        return []

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database file (``sinks.sqlite.path``, always set after loading)."""
        return self.sinks.sqlite.path or self.data_dir / SQLITE_FILENAME

    @property
    def external_ids(self) -> dict[str, str]:
        """``scheme:id`` -> node name, from the registry's ``ids`` (third-party formats)."""
        return {ident: node for node, dev in self.devices.items() for ident in dev.ids}

    @property
    def device_codecs(self) -> dict[str, str]:
        """node -> LoRaWAN payload codec, for the registry's devices that name one."""
        return {node: dev.codec for node, dev in self.devices.items() if dev.codec}

    def devices_for(self, node: str) -> DeviceConfig | None:
        """The registry entry for a node, or None if the node is not registered."""
        return self.devices.get(node)

    def device_site(self, node: str) -> str:
        device = self.devices.get(node)
        return device.site if device is not None and device.site else self.site

    def device_plot(self, node: str) -> str:
        device = self.devices.get(node)
        return device.plot if device is not None else "unassigned"
