import numpy as np

from em3.data.history import earlier_histories


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
