"""FLOAT_TEXT answers repr() for every float, however often and in whatever order asked."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.float_text import MAX_ENTRIES, FloatTexts


@settings(max_examples=300)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True)
                | st.sampled_from([0.0, -0.0, 0.1, -0.1, 1e-320, math.nan, math.inf]),
                max_size=60))
def test_every_answer_is_the_repr_asked_twice_in_any_order(values: list[float]) -> None:
    texts = FloatTexts()
    for value in values + values[::-1]:
        assert texts[value] == repr(value)


def test_minus_zero_and_zero_keep_their_own_text() -> None:
    texts = FloatTexts()
    assert (texts[0.0], texts[-0.0], texts[0.0]) == ("0.0", "-0.0", "0.0")
    assert (texts[-0.0], texts[0.0]) == ("-0.0", "0.0")
    assert len(texts) == 0  # zeros are one key with two texts: never kept


def test_nan_is_written_but_not_kept() -> None:
    texts = FloatTexts()
    assert [texts[math.nan] for _ in range(3)] == ["nan"] * 3
    assert len(texts) == 0


def test_the_table_stays_bounded() -> None:
    texts = FloatTexts()
    for i in range(3 * MAX_ENTRIES):
        assert texts[i + 0.5] == repr(i + 0.5)
    assert 0 < len(texts) <= MAX_ENTRIES
