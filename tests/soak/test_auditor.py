"""The auditor's book copy and what it reports when a copy differs from the venue."""

from __future__ import annotations

from decimal import Decimal

from soak.auditor import BookCopy, Divergence, differences


def test_a_copy_remembers_each_update_id_with_the_snapshot_it_came_from() -> None:
    copy = BookCopy(keep_history=True)
    copy.snapshot([("10", "1")], [("11", "2")], 100, "resync")
    assert copy.diff(101, 103, [("10", "0"), ("9", "4")], [])
    assert not copy.diff(105, 106, [], [])  # 104 is missing: the copy is void
    held = copy.history[103]
    assert held.top == (((Decimal(9), Decimal(4)),), ((Decimal(11), Decimal(2)),))
    assert (held.snapshot_id, held.snapshot_origin) == (100, "resync")
    assert 106 not in copy.history and not copy.valid


def test_differences_name_each_level_that_differs_by_side_and_price() -> None:
    held = (((Decimal("10"), Decimal("1")), (Decimal("9"), Decimal("2"))), ((Decimal("11"), Decimal("3")),))
    venue = (((Decimal("10"), Decimal("1.0")), (Decimal("8"), Decimal("2"))), ((Decimal("11"), Decimal("4")),))
    found = differences(held, venue)
    assert found == (
        ("bid", Decimal(9), Decimal(2), None),
        ("bid", Decimal(8), None, Decimal(2)),
        ("ask", Decimal(11), Decimal(3), Decimal(4)),
    )
    copy = BookCopy(keep_history=True)
    copy.snapshot([], [], 7, "lagged")
    text = Divergence(12.5, 7, copy.history[7], found).describe(started=10.0)
    assert "update id 7, 2.5 s into the run" in text and "lagged snapshot at id 7" in text
    assert "bid 8: copy absent, venue 2" in text and "ask 11: copy 3, venue 4" in text


def test_a_copy_without_levels_follows_only_the_update_ids() -> None:
    copy = BookCopy(keep_history=False, track_levels=False)
    copy.snapshot([("10", "1")], [("11", "2")], 100)
    assert copy.diff(101, 102, [("10", "0")], [])
    assert copy.valid and copy.last_id == 102 and copy.bids == {} and copy.history == {}
    assert not copy.diff(104, 104, [], [])  # 103 is missing
    assert not copy.valid
