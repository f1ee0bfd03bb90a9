"""MQTT payload formats: ``(topic, payload) -> [Packet | Rejection]``, pure.

One function per format, registered in :data:`MESSAGE_FORMATS` under the name that
``sources.mqtt.format`` (and a ``topics`` entry's ``format``) takes: ``native``, ``ttn``,
``chirpstack``, ``rtl433`` (docs/formats.md). :func:`message_decoder` binds ``default_site``
(the config's ``site``), the device registry's identities and each topic's codec, picks the
format by the subscription a message's topic matches, and the gateway hands the result to
``Pipeline.add_message_source``. Each returns a list because some
formats carry several uplinks in one message (a LoRaWAN server's batch, an Ecowitt upload
with several channels); the native format carries one.

No I/O, no clock, no logging: a decoder never raises for bad input; whatever cannot become
a packet is a :class:`Rejection`, quarantined with the raw payload and the topic it came on
(``Rejection.topic``: garbage often names no node, and the topic still says which device
or integration sent it; a packet carries its topic too, ``Packet.topic``, for the
rejections validation makes) and acknowledged after commit like any other message, so a
malformed message is kept once and never redelivered forever.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from paho.mqtt.client import topic_matches_sub

from firmware_bridge import reasons
from firmware_bridge.lorawan import decode_chirpstack, decode_ttn
from firmware_bridge.lorawan.chirpstack import event_of_topic
from firmware_bridge.native import FORMAT as NATIVE_FORMAT
from firmware_bridge.native import decode_native
from firmware_bridge.rtl433 import decode_rtl433_line
from gateway.packet import Packet, Rejection

#: Reason codes added by the MQTT formats (the decoders' own are in firmware_bridge.reasons).
TOPIC_MISMATCH: Final = "topic_mismatch"
BAD_TOPIC: Final = "bad_topic"
REASONS: Final[dict[str, str]] = {
    TOPIC_MISMATCH: "the body's node differs from the node level of the topic",
    BAD_TOPIC: "a topic level the message needs (site or node) is not a valid name",
}

# Same rule as firmware_bridge.native.Name: names become MQTT topic levels and InfluxDB tags.
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


#: ``(topic, payload, *, default_site, [ids, codec]) -> [Packet | Rejection]``; the
#: third-party formats also take the registry's ``ids`` and the topic's ``codec``.
MessageFormat = Callable[..., list[Packet | Rejection]]


_NO_IDS: Final[Mapping[str, str]] = {}
_TOPIC_CACHE: Final = 4096


def native_topic(topic: str) -> tuple[str, str] | None:
    """``satoyama/<site>/<node>/up`` -> (site, node); None for any other topic."""
    levels = topic.split("/")
    if len(levels) == 4 and levels[0] == "satoyama" and levels[3] == "up":
        return levels[1], levels[2]
    return None


def decode_native_message(
    topic: str, payload: bytes, default_site: str
) -> list[Packet | Rejection]:
    """A native JSON uplink (DESIGN.md "Native MQTT uplink") on ``satoyama/<site>/<node>/up``.

    - ``site``: the body's, else the topic's, else ``default_site``.
    - ``node``: the body's, else the topic's. A body node that differs from the topic's is
      refused (``topic_mismatch``): one of the two is wrong and we cannot tell which, and a
      node must not be able to post as another just by naming it in the body.
    - Anything :func:`decode_native` refuses (``bad_json``, ``schema``, ``bad_length``) is
      returned as its Rejection, with the payload as received.
    """
    topic_site, topic_node, site_default = _topic_sites(topic, default_site)
    result = decode_native(payload, site_default)
    if (
        isinstance(result, Rejection)
        and result.reason == reasons.SCHEMA
        and result.node is None
        and topic_node is not None
    ):
        result = _with_topic_node(payload, topic, topic_node, site_default, result)
    if isinstance(result, Rejection):
        result.topic = topic or None
        return [result]

    if topic_node is not None and result.node != topic_node:
        return [Rejection(
            TOPIC_MISMATCH,
            f"body node {result.node!r} on topic {topic!r} (node {topic_node!r})",
            result.raw, NATIVE_FORMAT, result.node, result.seq, topic or None,
        )]
    if result.site is None:  # the body named no site and the topic's is not a name
        return [Rejection(
            BAD_TOPIC, f"site level {topic_site!r} of topic {topic!r} is not a valid name",
            result.raw, NATIVE_FORMAT, result.node, result.seq, topic or None,
        )]
    result.topic = topic or None
    return [result]


@functools.lru_cache(maxsize=4096)  # the same few topics, one per node, come again and again
def _topic_sites(topic: str, default_site: str) -> tuple[str | None, str | None, str | None]:
    """(site level, node level, the site a body without one gets) of a native topic."""
    from_topic = native_topic(topic)
    topic_site, topic_node = from_topic if from_topic else (None, None)
    if topic_site is not None and not _NAME.match(topic_site):
        # Only a problem if the body does not name its site; decide after decoding.
        return topic_site, topic_node, None
    return topic_site, topic_node, topic_site or default_site


def _with_topic_node(
    payload: bytes, topic: str, node: str, site_default: str | None, first: Rejection
) -> Packet | Rejection:
    """The body has no ``node``: take it from the topic and decode again."""
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return first
    if not isinstance(body, dict) or "node" in body:
        return first
    if not _NAME.match(node):
        return Rejection(
            BAD_TOPIC, f"node level {node!r} of topic {topic!r} is not a valid name",
            first.raw, NATIVE_FORMAT, None, first.seq,
        )
    body = {"node": node, **body}
    result = decode_native(json.dumps(body).encode(), default_site=site_default)
    # Keep what was received, not our re-encoding, as the evidence and the dedup input.
    result.raw = first.raw
    return result


def decode_ttn_message(topic: str, payload: bytes, *, default_site: str,
                       ids: Mapping[str, str] = _NO_IDS, codec: str | None = None,
                       device_codecs: Mapping[str, str] = _NO_IDS,
                       ) -> list[Packet | Rejection]:
    """A The Things Stack v3 uplink (``v3/<app>@<tenant>/devices/<dev>/up``): the body says
    everything (firmware_bridge.lorawan.ttn), the topic is kept only as evidence."""
    return _on_topic(topic, decode_ttn(payload, default_site=default_site, ids=ids,
                                       codec=codec, device_codecs=device_codecs))


def decode_chirpstack_message(topic: str, payload: bytes, *, default_site: str,
                              ids: Mapping[str, str] = _NO_IDS, codec: str | None = None,
                              device_codecs: Mapping[str, str] = _NO_IDS,
                              ) -> list[Packet | Rejection]:
    """A ChirpStack v4 event (``application/<id>/device/<eui>/event/<type>``): the topic's
    event type when it has one, else the body's (firmware_bridge.lorawan.chirpstack)."""
    return _on_topic(topic, decode_chirpstack(payload, default_site=default_site, ids=ids,
                                              codec=codec, device_codecs=device_codecs,
                                              event=event_of_topic(topic)))


def decode_rtl433_message(topic: str, payload: bytes, *, default_site: str,
                          ids: Mapping[str, str] = _NO_IDS, codec: str | None = None,
                          device_codecs: Mapping[str, str] = _NO_IDS,
                          ) -> list[Packet | Rejection]:
    """An ``rtl_433 -F mqtt`` event (``rtl_433/<host>/events``): one JSON event, the same
    as a line of ``rtl_433 -F json`` (firmware_bridge.rtl433)."""
    return _on_topic(topic, decode_rtl433_line(payload, default_site=default_site, ids=ids))


def _on_topic(topic: str, result: Packet | Rejection) -> list[Packet | Rejection]:
    """``[result]`` with the topic it came on (none in a replay without ``--topic``)."""
    if topic:
        result.topic = topic
    return [result]


MESSAGE_FORMATS: Final[dict[str, MessageFormat]] = {
    "native": decode_native_message,
    "ttn": decode_ttn_message,
    "chirpstack": decode_chirpstack_message,
    "rtl433": decode_rtl433_message,
}

MessageDecoder = Callable[[str, bytes], list[Packet | Rejection]]


def message_decoder(name: str, *, default_site: str,
                    topics: Sequence[tuple[str, str, str | None]] = (),
                    ids: Mapping[str, str] = _NO_IDS,
                    device_codecs: Mapping[str, str] = _NO_IDS,
                    codec: str | None = None) -> MessageDecoder:
    """The decoder the pipeline calls for every message of one broker connection.

    ``topics`` are (filter, format, codec) of the subscriptions
    (``MqttSourceConfig.topic_formats``); ``name`` is the format of a message whose topic
    matches none of them (decoded with ``codec``: a replay's). ``ids`` (``scheme:id`` ->
    node) and ``device_codecs`` (node -> codec) come from the device registry. When every
    subscription is native, this is the native decoder with the site bound: the hot path
    stays one call. Otherwise a message's format is that of the first filter its topic
    matches, looked up once per topic and cached.
    """
    formats = {fmt for _, fmt, _ in topics} | {name}
    if formats == {"native"} and codec is None and not any(c for _, _, c in topics):
        return _native(default_site)
    registry = {"ids": dict(ids), "device_codecs": dict(device_codecs)}
    fallback = _bound(name, codec, default_site, registry)
    routes = [(topic_filter, _bound(fmt, entry_codec, default_site, registry))
              for topic_filter, fmt, entry_codec in topics]
    by_topic: dict[str, MessageDecoder] = {}

    def decode_message(topic: str, payload: bytes) -> list[Packet | Rejection]:
        decode = by_topic.get(topic)
        if decode is None:
            decode = next((d for f, d in routes if topic_matches_sub(f, topic)), fallback)
            if len(by_topic) >= _TOPIC_CACHE:  # topics come from the broker: bound it
                by_topic.clear()
            by_topic[topic] = decode
        return decode(topic, payload)

    return decode_message


def _native(default_site: str) -> MessageDecoder:
    """The native decoder with the site bound (a closure: a partial with a keyword builds
    a dict of keywords on every call)."""
    def decode(topic: str, payload: bytes) -> list[Packet | Rejection]:
        return decode_native_message(topic, payload, default_site)
    return decode


def _bound(fmt: str, codec: str | None, default_site: str,
           registry: dict[str, dict[str, str]]) -> MessageDecoder:
    if fmt == "native":
        return _native(default_site)
    return functools.partial(MESSAGE_FORMATS[fmt], default_site=default_site, codec=codec,
                             **registry)
