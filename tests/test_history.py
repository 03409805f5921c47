from datetime import date

import numpy as np
import pandas as pd

import em3.data.history as history_module
from em3.data.history import earlier_histories, has_time_of_day, history_chunks, history_time


def test_history_holds_earlier_day_positives_only_most_recent_first():
    #                 u1 d0  u1 d0  u1 d1  u1 d2  u1 d2  u2 d1  u2 d3
    user = np.array([1, 1, 1, 1, 1, 2, 2])
    day = np.array([0, 0, 1, 2, 2, 1, 3])
    item = np.array([10, 11, 12, 13, 14, 20, 21])
    label = np.array([1, 0, 1, 1, 0, 1, 0])
    history = earlier_histories(user, day, item, label, length=3)
    expected = [
        [0, 0, 0],  # day 0: nothing earlier
        [0, 0, 0],
        [10, 0, 0],  # day 1: day-0 positive only (not itself)
        [12, 10, 0],  # day 2: the same-day positive 13 is left out
        [12, 10, 0],
        [0, 0, 0],  # another user's history is separate
        [20, 0, 0],
    ]
    np.testing.assert_array_equal(history, expected)


def test_history_is_truncated_to_the_most_recent():
    user = np.ones(5, dtype=int)
    day = np.arange(5)
    item = np.arange(1, 6)
    history = earlier_histories(user, day, item, np.ones(5, dtype=int), length=2)
    np.testing.assert_array_equal(history[-1], [4, 3])


def test_earlier_events_hold_strictly_earlier_timestamps_and_never_the_event_itself():
    """A timestamped log: within one day, each event sees the positives before it, never itself nor an event at
    the same timestamp nor a later one (checked against a brute-force definition on random data)."""
    rng = np.random.default_rng(0)
    n = 400
    user = rng.integers(0, 6, n)
    ts = rng.integers(0, 50, n) * 60  # seconds; many ties within a user
    item = np.arange(1, n + 1)  # item r + 1 is row r's: a history item names the event it came from
    label = rng.integers(0, 2, n)
    history = earlier_histories(user, ts, item, label, length=n)
    for row in range(n):
        seen = history[row][history[row] > 0] - 1
        expected = np.flatnonzero((user == user[row]) & (label == 1) & (ts < ts[row]))
        assert set(seen) == set(expected), row
        assert row not in seen and (ts[seen] < ts[row]).all()
        assert (np.diff(ts[seen]) <= 0).all(), "most recent first"


def test_the_automatic_rule_cuts_at_days_unless_timestamps_carry_a_time_of_day():
    days = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-02"]))
    times = pd.Series(pd.to_datetime(["2020-01-01 08:00", "2020-01-01 09:30", "2020-01-02 00:00"]))
    assert not has_time_of_day(days) and has_time_of_day(times)
    key, rule = history_time(days, "auto")
    assert rule == "earlier_days" and key[0] == key[1] < key[2]
    key, rule = history_time(times, "auto")
    assert rule == "earlier_events" and key[0] < key[1] < key[2]
    key, rule = history_time(times, "earlier_days")  # explicit: the same-day events stay out of each other's history
    assert rule == "earlier_days" and key[0] == key[1]
    dates = pd.Series([date(2020, 1, 1), date(2020, 1, 2)])  # the canonical date32 column read back
    assert history_time(dates, "auto")[1] == "earlier_days"


def test_pieces_of_any_rows_equal_the_whole_computation(monkeypatch):
    """The bounded-memory path (em3.data.tables writes histories to disk piece by piece) gives every row the same
    history as the whole computation, for rows in any order and pieces smaller than a user's run of rows."""
    rng = np.random.default_rng(1)
    n = 500
    user, day = rng.integers(0, 7, n), rng.integers(0, 30, n)
    item, label = rng.integers(1, 90, n), rng.integers(0, 2, n)
    whole = earlier_histories(user, day, item, label, length=6)
    monkeypatch.setattr(history_module, "_CHUNK_VALUES", 6 * 13)  # 13 rows a piece
    rows = rng.permutation(n)
    pieces = list(history_chunks(user, day, item, label, 6, rows))
    assert [begin for begin, _ in pieces] == list(range(0, n, 13))
    np.testing.assert_array_equal(np.concatenate([values for _, values in pieces]), whole[rows])


def test_a_log_without_positives_has_empty_histories():
    history = earlier_histories(np.array([1, 1]), np.array([0, 1]), np.array([5, 6]), np.zeros(2, int), length=2)
    np.testing.assert_array_equal(history, np.zeros((2, 2)))
