"""The order journal: records survive reopening (a restart, a kill -9 of the process), in the
order they came, the newest `capacity` of them, and a dropped record is gone from disk too."""

from __future__ import annotations

from pathlib import Path

import pytest

from provider.trading.journal import PlacementJournal, SentRecord, SentState


def test_records_survive_reopening_in_the_order_they_came(tmp_path: Path) -> None:
    journal = PlacementJournal(tmp_path / "orders")
    journal.put("late", SentRecord(SentState.SENDING, "BTCUSDT", 2_000))
    journal.put("early", SentRecord(SentState.PLACED, "ETHUSDT", 1_000))
    journal.put("gone", SentRecord(SentState.UNKNOWN, "BTCUSDT", 1_500))
    journal.drop("gone")
    journal.put("late", SentRecord(SentState.UNKNOWN, "BTCUSDT", 3_000))  # rewritten with what was learnt
    journal.close()
    reopened = PlacementJournal(tmp_path / "orders", capacity=10)
    assert len(reopened) == 2 and reopened.get("gone") is None
    assert reopened.get("early") == SentRecord(SentState.PLACED, "ETHUSDT", 1_000)
    assert reopened.get("late") == SentRecord(SentState.UNKNOWN, "BTCUSDT", 3_000)
    reopened.close()


def test_only_the_newest_records_are_kept_on_disk_too(tmp_path: Path) -> None:
    journal = PlacementJournal(tmp_path / "orders", capacity=3)
    for i in range(5):
        journal.put(f"id-{i}", SentRecord(SentState.PLACED, "BTCUSDT", 1_000 + i))
    assert len(journal) == 3 and journal.get("id-1") is None and journal.get("id-2") is not None
    journal.close()
    reopened = PlacementJournal(tmp_path / "orders", capacity=2)  # a smaller cap drops the oldest left
    assert [reopened.get(f"id-{i}") is not None for i in range(5)] == [False, False, False, True, True]
    reopened.close()


def test_without_a_directory_it_keeps_records_in_memory_only() -> None:
    journal = PlacementJournal()
    journal.put("a", SentRecord(SentState.SENDING, "BTCUSDT", 1))
    assert journal.get("a") is not None
    with pytest.raises(ValueError, match="at least one"):
        PlacementJournal(capacity=0)
