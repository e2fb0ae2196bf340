"""Times: RFC 3339 and Unix seconds in, microseconds inside, one canonical string out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from auditlog.model.times import (
    MAX_US,
    MIN_US,
    TimeFormatError,
    format_us,
    from_unix_seconds,
    now_us,
    parse_rfc3339,
    parse_time_param,
    parse_time_value,
)


def us(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> int:
    """Microseconds since the epoch of a UTC date and time."""
    dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


EXAMPLE = us(2026, 11, 27, 2, 27, 53, 123456)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T02:27:53.123456Z",
        "2026-11-27t02:27:53.123456z",
        "2026-11-27T02:27:53.123456+00:00",
        "2026-11-27T02:27:53.123456-00:00",
        "2026-11-27T03:27:53.123456+01:00",
        "2026-11-26T20:57:53.123456-05:30",
        "2026-11-28T01:27:53.123456+23:00",
        "2026-11-27T02:27:53.123456789Z",
        "2026-11-27T02:27:53.1234569Z",
    ],
)
def test_rfc3339_with_offsets_and_fractions(text: str) -> None:
    assert parse_rfc3339(text) == EXAMPLE


@pytest.mark.parametrize(
    ("fraction", "micro"),
    [("", 0), (".0", 0), (".1", 100_000), (".12", 120_000), (".000001", 1), (".9999999", 999_999)],
)
def test_fractions_are_microseconds_truncated(fraction: str, micro: int) -> None:
    assert parse_rfc3339(f"2026-11-27T02:27:53{fraction}Z") == us(2026, 11, 27, 2, 27, 53) + micro


def test_leap_second_is_held_at_the_end_of_its_minute() -> None:
    leap = parse_rfc3339("2016-12-31T23:59:60Z")
    assert leap == parse_rfc3339("2016-12-31T23:59:59.999999Z")
    assert parse_rfc3339("2016-12-31T23:59:60.5Z") == leap
    assert parse_rfc3339("2016-12-31T23:59:59Z") < leap < parse_rfc3339("2017-01-01T00:00:00Z")
    # The same leap second written in another zone.
    assert parse_rfc3339("2017-01-01T00:59:60+01:00") == leap


@pytest.mark.parametrize(
    "text",
    [
        "",
        "now",
        "2026-11-27",
        "2026-11-27T02:27:53",  # no offset
        "2026-11-27T02:27Z",
        "2026-11-27T02:27:53.Z",
        "2026-11-27T02:27:53.123456Z\n",
        " 2026-11-27T02:27:53Z",
        "2026-11-27T02:27:53+0100",
        "2026-11-27T02:27:53+01",
        "26-11-27T02:27:53Z",
        "2026-1-27T02:27:53Z",
        "\uff12\uff10\uff12\uff16-11-27T02:27:53Z",  # full-width digits
        "2026-11-27T02:27:53+24:00",
        "2026-11-27T02:27:53+01:60",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-02-29T00:00:00Z",  # not a leap year
        "2026-02-30T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T23:60:00Z",
        "2026-11-27T23:59:61Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",  # the year 0 in UTC
        "9999-12-31T23:59:59-00:01",  # the year 10000 in UTC
        "0001-01-01T00:00:00+23:59",
    ],
)
def test_invalid_rfc3339_is_refused(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_rfc3339(text)


def test_leap_year_day_is_accepted() -> None:
    assert parse_rfc3339("2024-02-29T12:00:00Z") == us(2024, 2, 29, 12)


def test_bounds_are_the_years_1_to_9999() -> None:
    assert parse_rfc3339("0001-01-01T00:00:00Z") == MIN_US
    assert parse_rfc3339("9999-12-31T23:59:59.999999Z") == MAX_US
    assert parse_rfc3339("0001-01-01T00:30:00+00:15") == MIN_US + 15 * 60 * 1_000_000
    assert format_us(MIN_US) == "0001-01-01T00:00:00.000000Z"
    assert format_us(MAX_US) == "9999-12-31T23:59:59.999999Z"


def test_error_message_names_the_value_and_what_was_expected() -> None:
    with pytest.raises(TimeFormatError, match=r"'yesterday' is not an RFC 3339 time"):
        parse_rfc3339("yesterday")
    with pytest.raises(TimeFormatError, match="valid calendar time"):
        parse_rfc3339("2026-02-30T00:00:00Z")


def test_format_us_writes_utc_with_microseconds() -> None:
    assert format_us(EXAMPLE) == "2026-11-27T02:27:53.123456Z"
    assert format_us(0) == "1970-01-01T00:00:00.000000Z"
    assert format_us(-1) == "1969-12-31T23:59:59.999999Z"


@given(st.integers(min_value=MIN_US, max_value=MAX_US))
def test_format_parse_round_trip(x: int) -> None:
    text = format_us(x)
    assert parse_rfc3339(text) == x
    assert format_us(parse_rfc3339(format_us(x))) == format_us(x)


@given(st.integers(min_value=MIN_US, max_value=MAX_US))
def test_formatted_times_sort_as_strings_like_the_times(x: int) -> None:
    # Stores compare normalised times as strings; that is right only if the order agrees.
    y = x + 1 if x < MAX_US else x - 1
    assert (format_us(x) < format_us(y)) == (x < y)


@given(
    st.integers(min_value=MIN_US, max_value=MAX_US),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_offsets_name_the_same_instant(x: int, offset_minutes: int) -> None:
    local_us = x + offset_minutes * 60_000_000
    assume(MIN_US <= local_us <= MAX_US)
    sign = "+" if offset_minutes >= 0 else "-"
    hh, mm = divmod(abs(offset_minutes), 60)
    assert parse_rfc3339(f"{format_us(local_us)[:-1]}{sign}{hh:02d}:{mm:02d}") == x


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, 0),
        (1_700_000_000, 1_700_000_000_000_000),
        (1_700_000_000.5, 1_700_000_000_500_000),
        (1.000001, 1_000_001),
        (-1.5, -1_500_000),
    ],
)
def test_unix_seconds(seconds: float, expected: int) -> None:
    assert from_unix_seconds(seconds) == expected
    assert parse_time_value(seconds) == expected


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        10**12,
        -(10**12),
        1e300,
        # Large enough that seconds * 1e6 is a float infinity (an OverflowError, once a 500).
        1.7976931348623157e302,
        -1.7976931348623157e308,
        True,
        False,
    ],
)
def test_unusable_unix_seconds_are_refused(value: object) -> None:
    with pytest.raises(TimeFormatError):
        parse_time_value(value)


@pytest.mark.parametrize("value", [None, [], {}, "1700000000", b"2026-11-27T02:27:53Z"])
def test_time_value_must_be_a_string_or_a_number(value: object) -> None:
    with pytest.raises(TimeFormatError):
        parse_time_value(value)


def test_time_value_string_is_rfc3339() -> None:
    assert parse_time_value("2026-11-27T02:27:53.123456Z") == EXAMPLE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1700000000", 1_700_000_000_000_000),
        ("1700000000.5", 1_700_000_000_500_000),
        ("1700000000.123456789", 1_700_000_000_123_456),
        ("0.0000001", 0),
        ("-1.5", -1_500_000),
        ("-0.5", -500_000),
        ("2026-11-27T02:27:53.123456Z", EXAMPLE),
        ("2026-11-27T03:27:53.123456+01:00", EXAMPLE),
    ],
)
def test_time_param(text: str, expected: int) -> None:
    assert parse_time_param(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1700000000",
        "1700000000 ",
        "1e9",
        "0x10",
        "1_700_000_000",
        "+1700000000",
        "1700000000.",
        ".5",
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",  # Arabic-Indic digits
        "99999999999999",
        "-99999999999999",
        "1" * 5000,  # longer than int() reads by default
        "1" * 5000 + ".5",
        "2026-02-30T00:00:00Z",
    ],
)
def test_bad_time_param_is_refused(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_time_param(text)


@given(st.integers(min_value=MIN_US // 1_000_000, max_value=MAX_US // 1_000_000))
def test_time_param_whole_seconds(seconds: int) -> None:
    assert parse_time_param(str(seconds)) == seconds * 1_000_000


@given(st.integers(min_value=0, max_value=MAX_US))
def test_time_param_decimal_is_exact(x: int) -> None:
    whole, micro = divmod(x, 1_000_000)
    assert parse_time_param(f"{whole}.{micro:06d}") == x


@given(st.text(max_size=40))
def test_time_param_raises_only_time_format_error(text: str) -> None:
    try:
        value = parse_time_param(text)
    except TimeFormatError:
        return
    assert MIN_US <= value <= MAX_US


def test_now_is_a_current_time() -> None:
    assert parse_rfc3339("2020-01-01T00:00:00Z") < now_us() < MAX_US
