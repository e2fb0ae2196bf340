"""What the HTTP sinks share (``auditlog.service.delivery.httppost``): Retry-After, and what a
message may say about where a request went. The requests themselves are tested through the
webhook and Splunk HEC sinks."""

from __future__ import annotations

from email.utils import formatdate

from auditlog.service.delivery.httppost import MAX_RETRY_AFTER, origin, parse_retry_after

NOW = 1_700_000_000


def test_retry_after_values() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("0") == 0
    assert parse_retry_after(" 120 ") == 120
    assert parse_retry_after("9" * 40) == MAX_RETRY_AFTER
    assert parse_retry_after("-5") is None
    assert parse_retry_after("1.5") is None
    assert parse_retry_after("") is None
    assert parse_retry_after("tomorrow") is None
    assert parse_retry_after("٣") is None  # an Arabic-Indic digit is not delta-seconds
    date = formatdate(NOW + 90, usegmt=True)
    assert parse_retry_after(date, lambda: float(NOW)) == 90
    assert parse_retry_after(formatdate(NOW - 90, usegmt=True), lambda: float(NOW)) == 0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", lambda: float(NOW)) == 0
    assert parse_retry_after(formatdate(NOW + 10**7, usegmt=True), lambda: float(NOW)) == (
        MAX_RETRY_AFTER
    )
    # RFC 850 and asctime forms, which HTTP recipients must accept too.
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", lambda: 784111777.0 - 7) == 7
    assert parse_retry_after("Sun Nov  6 08:49:37 1994", lambda: 784111777.0 - 7) == 7


def test_a_message_names_a_url_by_its_origin_only() -> None:
    assert origin("https://hooks.example/services/T0/B0/XYZ?sig=1") == "https://hooks.example"
    assert origin("http://127.0.0.1:8080/a") == "http://127.0.0.1:8080"
    assert origin("https://[::1]:8443/a?b") == "https://[::1]:8443"
