"""The interleaved timing of the speed benchmarks: turns within every round, and paired ratios."""

import math

from obte_cli.engine.bench import timing


def test_works_take_turns_within_every_round(monkeypatch):
    calls = []
    clock = iter(range(1000))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(clock)))
    seconds = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds, in turns
    assert seconds == {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0]}  # each call spans one tick of the fake clock


def test_a_burst_of_load_moves_one_round_not_the_ratio():
    # B is twice as slow as A in every round; round 3 is disturbed for both (a burst of load)
    a = [1.0, 1.0, 5.0, 1.0, 1.0]
    b = [2.0, 2.0, 10.0, 2.0, 2.0]
    assert timing.paired_ratio(b, a) == (2.0, 2.0, 2.0)
    # a burst that hits only one side shows in the quartiles, not in the median
    median, q1, q3 = timing.paired_ratio([2.0, 2.0, 2.0, 2.0, 9.0], a)
    assert (median, q1, q3) == (2.0, 2.0, 2.0)


def test_paired_ratio_quartiles_by_hand():
    median, q1, q3 = timing.paired_ratio([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0])
    assert (median, q1, q3) == (2.5, 1.75, 3.25)  # numpy's linear interpolation


def test_load_average_is_a_number():
    assert math.isnan(timing.load_average()) or timing.load_average() >= 0
