"""The spare CPU gauge: the idle part of the machine's ticks between two looks, plus what the
helpers used themselves, in cores."""

from __future__ import annotations

import os

import pytest

from auditlog.storage import sparecpu


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What /proc says, as the test sets it: the machine's (all, idle) ticks, each helper's."""
    now: dict[str, object] = {"machine": (10_000, 4_000), "ticks": {}}
    monkeypatch.setattr(sparecpu, "_machine", lambda: now["machine"])
    monkeypatch.setattr(sparecpu, "_ticks", lambda pid: now["ticks"].get(pid))  # type: ignore[attr-defined]
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    return now


def test_idle_ticks_and_the_helpers_own_are_spare(readings: dict[str, object]) -> None:
    gauge = sparecpu.SpareCpu()
    readings["ticks"] = {7: 500, 8: 100}
    assert gauge.cores([7, 8]) is None  # nothing to compare with yet
    # 400 ticks of two cores: 100 idle, 60 and 20 by the helpers, one of which came since.
    readings["machine"] = (10_400, 4_100)
    readings["ticks"] = {7: 560, 8: 120, 9: 30}
    assert gauge.cores([7, 8, 9]) == pytest.approx((100 + 60 + 20) / 400 * 2)
    # A helper gone since counts for nothing.
    readings["machine"] = (10_800, 4_100)
    readings["ticks"] = {7: 600}
    assert gauge.cores([7, 8, 9]) == pytest.approx(40 / 400 * 2)


def test_readings_a_tick_apart_never_give_more_than_every_core(
    readings: dict[str, object],
) -> None:
    """/proc counts the machine's ticks and a process's apart: over 0.3 s the busy helper's
    31 ticks and the other core's 30 idle ones came to 61 of the machine's 60."""
    gauge = sparecpu.SpareCpu()
    readings["ticks"] = {7: 1_000}
    gauge.cores([7])
    readings["machine"] = (10_060, 4_030)
    readings["ticks"] = {7: 1_031}
    assert gauge.cores([7]) == 2.0


def test_a_look_too_soon_after_the_last_says_nothing_and_keeps_it(
    readings: dict[str, object],
) -> None:
    gauge = sparecpu.SpareCpu()
    gauge.cores([])
    readings["machine"] = (10_000 + 2 * sparecpu.MIN_TICKS - 1, 4_000)
    assert gauge.cores([]) is None
    readings["machine"] = (10_200, 4_200)  # all idle since the first look, which still counts
    assert gauge.cores([]) == pytest.approx(2.0)


def test_without_proc_there_is_no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparecpu, "_machine", lambda: None)
    gauge = sparecpu.SpareCpu()
    assert gauge.cores([]) is None
    assert gauge.cores([]) is None


def test_this_machine_reads_between_none_and_every_core() -> None:
    gauge = sparecpu.SpareCpu()
    before = os.times()
    gauge.cores([os.getpid()])
    busy_until = before.elapsed + 0.5
    while os.times().elapsed < busy_until:
        pass
    spare = gauge.cores([os.getpid()])
    after = os.times()
    if sparecpu._machine() is None:
        pytest.skip("this system has no /proc/stat")
    assert spare is not None
    # This process was busy all along, and what it used counts as spare: at least its own
    # share of the time (however little the machine's other work left it), less a few
    # ticks of 10 ms that the two readings may split differently.
    used = (after.user + after.system - before.user - before.system) / (
        after.elapsed - before.elapsed
    )
    assert used - 0.1 <= spare <= (os.cpu_count() or 1) + 0.01
