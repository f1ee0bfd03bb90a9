"""Outbox rows as line protocol: escaping, refusals, number formats (pure, table-driven)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sinks.line_protocol import (
    FIELDS,
    LineProtocolError,
    RowEncoder,
    encode_point,
    escape_key,
    escape_measurement,
    format_field,
    row_to_line,
)
from gateway.sinks.retry import Backoff, RetryPolicy, parse_retry_after

ESCAPED_KEYS = [
    ("plain", "plain"),
    ("a,b", r"a\,b"),
    ("a b", r"a\ b"),
    ("a=b", r"a\=b"),
    (",= ", r"\,\=\ "),
    ('quo"te', 'quo"te'),
    ("back\\slash", "back\\slash"),  # a lone backslash before an ordinary character stays
    ("日本語 の 畑", r"日本語\ の\ 畑"),
    ("=leading", r"\=leading"),
    ("trailing ", "trailing\\ "),
]


@pytest.mark.parametrize(("raw", "escaped"), ESCAPED_KEYS)
def test_tag_and_field_keys_are_escaped(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


UNWRITABLE = [
    ("", "empty"),
    ("new\nline", "control character"),
    ("carriage\rreturn", "control character"),
    ("tab\there", "control character"),
    ("ends with\\", "backslash"),
    ("a\\,b", "backslash"),
    ("a\\=b", "backslash"),
    ("a\\ b", "backslash"),
    ("two\\\\backslashes", "backslash"),
]


@pytest.mark.parametrize(("raw", "why"), UNWRITABLE)
def test_values_parsers_cannot_read_back_are_refused(raw: str, why: str) -> None:
    with pytest.raises(LineProtocolError, match=why):
        escape_key(raw)


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("reading", "reading"), ("a,b c", r"a\,b\ c"), ("a=b", "a=b")],
)
def test_measurement_escapes_comma_and_space_only(name: str, escaped: str) -> None:
    assert escape_measurement(name) == escaped


def test_measurement_cannot_start_a_comment() -> None:
    with pytest.raises(LineProtocolError, match="comment"):
        escape_measurement("#reading")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (20.5, "20.5"),
        (4211.0, "4211.0"),
        (-97.0, "-97.0"),
        (1e-7, "1e-07"),
        (1.5e16, "1.5e+16"),
        (0.1 + 0.2, "0.30000000000000004"),  # shortest repr that round-trips
        (42, "42i"),
        (True, "true"),
        ('say "hi" \\o/', '"say \\"hi\\" \\\\o/"'),
        # Control characters in strings: each run one space, none at the ends (no server
        # may see a line break inside a line; VictoriaMetrics drops such a point).
        ("soil is dry\n", '"soil is dry"'),
        ("line one\nline two\n", '"line one line two"'),
        ("crlf\r\nend", '"crlf end"'),
        ("cr\ronly", '"cr only"'),
        ("\ttab\x00nul\x7fdel\x1b", '"tab nul del"'),
        ("keeps  spaces ", '"keeps  spaces "'),
        ("\n", '""'),
    ],
)
def test_field_values(value: Any, text: str) -> None:
    assert format_field(value) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_string_field_is_one_quoted_token_without_control_characters(text: str) -> None:
    written = format_field(text)
    assert written[0] == written[-1] == '"'
    assert not any(c < " " or c == "\x7f" for c in written)
    inner = written[1:-1]
    assert '"' not in re.sub(r"\\.", "", inner)  # every quote escaped
    if not any(c < " " or c == "\x7f" for c in text):
        assert re.sub(r"\\(.)", r"\1", inner) == text  # unaltered, just escaped


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(LineProtocolError, match="not finite"):
        format_field(value)


def _reading_row(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7, "packet_id": 3, "time_ns": 1_782_879_000_000_000_000, "site": "farm",
        "plot": "east", "node": "n17", "sensor": "soil_10cm", "temperature_c": None,
        "soil_moisture_pct": 28.4, "soil_temperature_c": 21.0, "no_such_quantity": 5.0,
    }
    row.update(over)
    return row


def test_reading_row_has_sorted_tags_and_only_non_null_catalogue_fields() -> None:
    assert row_to_line("reading", _reading_row()) == (
        "reading,node=n17,plot=east,sensor=soil_10cm,site=farm "
        "soil_moisture_pct=28.4,soil_temperature_c=21.0 1782879000000000000"
    )


def test_device_row_writes_seq_as_float() -> None:
    row = {"id": 1, "packet_id": 1, "time_ns": 5, "site": "farm", "plot": "east",
           "node": "n17", "battery_v": 3.62, "rssi_dbm": -97.0, "snr_db": None,
           "seq": 4211.0, "packet_loss_pct": 0.0}
    assert row_to_line("device", row) == (
        "device,node=n17,plot=east,site=farm "
        "battery_v=3.62,rssi_dbm=-97.0,seq=4211.0,packet_loss_pct=0.0 5"
    )


def test_row_without_fields_has_no_line() -> None:
    assert row_to_line("reading", _reading_row(soil_moisture_pct=None,
                                               soil_temperature_c=None)) is None


def test_hostile_tags_are_escaped_not_altered() -> None:
    line = row_to_line("reading", _reading_row(site="Ōyama, upper=terrace", node="n 1"))
    assert line is not None
    assert line.startswith(r"reading,node=n\ 1,plot=east,sensor=soil_10cm,"
                           r"site=Ōyama\,\ upper\=terrace soil_moisture_pct=28.4")


def test_unwritable_tag_raises_for_the_sink_to_quarantine() -> None:
    with pytest.raises(LineProtocolError, match="tag node"):
        row_to_line("reading", _reading_row(node="n1\n"))


def test_point_needs_a_field() -> None:
    with pytest.raises(LineProtocolError, match="without fields"):
        encode_point("gateway", {"gateway": "g"}, {}, 1)


# ------------------------------------------------------------------ retry helper


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    b = Backoff(initial_s=0.5, max_s=8.0)
    for attempt, bound in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (30, 8.0)]:
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(min(0.5, bound) <= d <= bound for d in delays)
        if bound > 1:
            assert max(delays) - min(delays) > bound / 4  # jittered, not in lock-step


def test_retry_after_is_a_lower_bound_up_to_its_cap() -> None:
    b = Backoff(initial_s=0.1, max_s=1.0, max_retry_after_s=30.0)
    assert b.delay(1, retry_after_s=12.0) == 12.0
    assert b.delay(1, retry_after_s=3600.0) == 30.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("7", 7.0), ("1.5", 1.5), ("soon", None),
     ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
     # not delay-seconds: the sink's own backoff applies, as with no header
     ("-3", None), ("inf", None), ("nan", None), ("1e9", None)],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(header, now=now) == seconds


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set the process's local time zone (TZ + tzset), restored afterwards."""
    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York", "UTC"])
@pytest.mark.parametrize(
    "header",
    # RFC 9110 §5.6.7: a recipient must accept all three forms, each meaning UTC.
    ["Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
     "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
     "Sun Nov  6 08:49:37 1994"],  # obsolete asctime: no zone written, still UTC
)
def test_retry_after_http_dates_are_utc_whatever_the_local_zone(
    local_zone: Callable[[str], None], zone: str, header: str
) -> None:
    local_zone(zone)
    now = 784111747.0  # 1994-11-06 08:49:07 UTC
    assert parse_retry_after(header, now=now) == 30.0


def test_default_policy_waits_long_for_config_errors() -> None:
    policy = RetryPolicy()
    assert policy.config.delay(1) >= 60.0
    assert policy.transient.delay(1) <= 0.5


_FLOATS = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**53, 2**53),
    st.sampled_from([0.1, -0.0, 1e-7, 1e22, 3.7, 1.7976931348623157e308]),
)


@settings(max_examples=400, deadline=None)
@given(table=st.sampled_from(["reading", "device"]), data=st.data())
def test_row_encoder_matches_encode_point(table: str, data: st.DataObject) -> None:
    """The sink's row encoder (columns looked up once per layout) writes what
    ``encode_point`` writes for the same point: any null pattern and column order (the
    store's ``SELECT *`` rows and the pipeline's hand-off rows differ in both), ints as
    floats, NaN and infinities refused alike."""
    names = list(FIELDS[table])
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    tag_cols = ["node", "plot", "site"] + (["sensor"] if table == "reading" else [])
    columns = data.draw(st.permutations(["id", "time_ns", *tag_cols, *chosen]))
    values = {c: data.draw(_FLOATS) for c in chosen}
    row = {"id": 7, "time_ns": 1_782_879_000_000_000_000, "node": "n 1", "plot": "east",
           "site": "farm", "sensor": "soil_10cm", **values}
    encoder = RowEncoder(table, columns)
    fields = {c: float(v) for c in names if (v := values.get(c)) is not None}
    try:
        expected: str | None = encode_point(
            table, {k: row[k] for k in tag_cols}, fields, row["time_ns"]) if fields else None
    except LineProtocolError as e:
        with pytest.raises(LineProtocolError, match="not finite"):
            encoder(tuple(row[c] for c in columns))
        assert "not finite" in str(e)
        return
    assert encoder(tuple(row[c] for c in columns)) == expected


@settings(max_examples=300, deadline=None)
@given(table=st.sampled_from(["reading", "device"]), data=st.data())
def test_row_encoder_template_for_rows_of_set_floats_matches_encode_point(
        table: str, data: st.DataObject) -> None:
    """Rows whose fields are all set floats (the pipeline's hand-off) take the encoder's
    one-template path: the same text as ``encode_point``, also for values whose sum
    overflows (written the long way) and for -0.0; a NaN or an infinity is still refused."""
    names = list(FIELDS[table])
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    tag_cols = ["node", "plot", "site"] + (["sensor"] if table == "reading" else [])
    columns = data.draw(st.permutations(["id", "time_ns", *tag_cols, *chosen]))
    finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                       st.sampled_from([1.7976931348623157e308, -0.0, 21.3]))
    values = {c: data.draw(finite) for c in chosen}
    row = {"id": 7, "time_ns": 1_782_879_000_000_000_000, "node": "n1", "plot": "east",
           "site": "farm", "sensor": "main", **values}
    encoder = RowEncoder(table, columns)
    expected = encode_point(table, {k: row[k] for k in tag_cols},
                            {c: values[c] for c in names if c in values}, row["time_ns"])
    assert encoder(tuple(row[c] for c in columns)) == expected
    bad = data.draw(st.sampled_from(chosen))
    row[bad] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    with pytest.raises(LineProtocolError, match="not finite"):
        encoder(tuple(row[c] for c in columns))
