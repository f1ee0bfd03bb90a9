"""Rejection reason codes produced by ``firmware_bridge`` decoders.

Each code is a counter label (``gateway`` measurement, ``rejected`` by reason) and the key
under which quarantined input is filed, so the strings are short, snake_case and stable:
add new codes, never rename old ones. The meaning of each is one line in :data:`REASONS`.
"""

from __future__ import annotations

from typing import Final

# Framing (binary stream, frame-hex, RYLR)
GARBAGE: Final = "garbage"
BAD_SYNC: Final = "bad_sync"
BAD_LENGTH: Final = "bad_length"
BAD_CRC: Final = "bad_crc"
TRUNCATED: Final = "truncated"
UNSUPPORTED_VERSION: Final = "unsupported_version"
UNKNOWN_READING_TYPE: Final = "unknown_reading_type"
BAD_CHANNEL: Final = "bad_channel"
DUPLICATE_READING: Final = "duplicate_reading"
BAD_HEX: Final = "bad_hex"
# REYAX RYLR module lines
BAD_RYLR: Final = "bad_rylr"
LENGTH_MISMATCH: Final = "length_mismatch"
# Cayenne LPP replay lines
BAD_LPP_LINE: Final = "bad_lpp_line"
# Native JSON lines (and rtl_433 JSON events)
BAD_JSON: Final = "bad_json"
SCHEMA: Final = "schema"
# Ecowitt upload bodies
BAD_FORM: Final = "bad_form"
UNKNOWN_STATION: Final = "unknown_station"
UNIT_MISMATCH: Final = "unit_mismatch"
# LoRaWAN network servers (ttn, chirpstack)
NO_CODEC: Final = "no_codec"
BAD_PAYLOAD: Final = "bad_payload"
# Messages that are acknowledged and counted (``ignored.<reason>``), not quarantined
NOT_UPLINK: Final = "not_uplink"
NO_READINGS: Final = "no_readings"

REASONS: Final[dict[str, str]] = {
    GARBAGE: "bytes skipped while looking for a frame's sync word (count in the detail)",
    BAD_SYNC: "a single frame (frame-hex) that does not start with the sync word A5 5A",
    BAD_LENGTH: "LEN outside 5..250, too small for the flags, not matching the buffer, "
    "a reading cut by the end of the frame, or an over-long line; an empty or over-long "
    "Cayenne LPP payload",
    BAD_CRC: "CRC-16/CCITT-FALSE over LEN..tag does not match",
    TRUNCATED: "frame ends early: the next frame's sync starts inside its span, or input ended; "
    "a Cayenne LPP value cut by the end of the payload",
    UNSUPPORTED_VERSION: "protocol version nibble is not 1, or a reserved flag bit is set",
    UNKNOWN_READING_TYPE: "a reading TYPE byte not in the type table (frames or Cayenne LPP)",
    BAD_CHANNEL: "a reading CHANNEL byte above 250, or battery on a channel other than 0",
    DUPLICATE_READING: "the same (type, channel) twice in one frame or LPP payload",
    BAD_HEX: "frame-hex, RYLR or lpp-hex data is not an even number of hex digits",
    BAD_RYLR: "a +RCV line without 5 well-formed fields, or a line that is no module output",
    LENGTH_MISMATCH: "RYLR <len> differs from the number of data characters",
    BAD_LPP_LINE: "an lpp-hex replay line that is not <node> <hex payload>",
    BAD_JSON: "native or rtl_433 line, or LoRaWAN server message, is not UTF-8 JSON (or "
    "empty, or NaN/Infinity literals)",
    SCHEMA: "native JSON does not match the uplink contract (keys, types, timestamp); an "
    "rtl_433 event without model or id, or with a non-number reading; an Ecowitt upload "
    "without PASSKEY or MAC, with a bad dateutc, a non-number value or nothing to store; a "
    "LoRaWAN server message without the fields of an uplink, or a decoded value that is "
    "no number",
    BAD_FORM: "an Ecowitt upload that is not a UTF-8 application/x-www-form-urlencoded "
    "body, repeats a key, or is too long",
    UNKNOWN_STATION: "an Ecowitt upload from a station (PASSKEY or MAC) not in "
    "sources.http.stations",
    UNIT_MISMATCH: "Ecowitt upload fields whose values are not in the imperial units their "
    "names say (a pressure above any in inHg): temperatures, pressure, wind and rain refused",
    NO_CODEC: "a LoRaWAN uplink with payload bytes, no decoded object from the server and "
    "no codec configured for its topic (or an unknown codec name)",
    BAD_PAYLOAD: "a LoRaWAN payload its codec cannot read (length, layout, f_port, base64)",
    NOT_UPLINK: "ignored, not rejected: a LoRaWAN server event that carries no readings "
    "(join, status, ack, txack, log, location, downlink events)",
    NO_READINGS: "ignored, not rejected: a LoRaWAN uplink whose payload its codec reads as "
    "device traffic without readings (Milesight device information, replies to downlink "
    "commands, battery percentage)",
}
