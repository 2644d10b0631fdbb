"""The feedback file: cards kept by a writer thread, in order, and nothing queued lost."""

import sqlite3

from ivig_advisor.engine.service.feedback import CardKeeper, FeedbackStore


def card(i):
    return {"uuid": f"card-{i}", "indicator": "warning", "summary": f"card {i}", "rule": "thrombosis"}


def kept(path):
    return [row[0] for row in sqlite3.connect(path).execute("select uuid from card order by rowid")]


def test_a_flush_returns_once_every_card_queued_before_it_is_written(tmp_path):
    """More than one batch (500 answers) is queued: the flush must wait for all of it, the
    answer past the full batch included (it was once put back behind the flush, and lost to it)."""
    path = tmp_path / "fb.sqlite"
    keeper = CardKeeper(FeedbackStore(path))
    for i in range(1201):
        keeper.keep("ivig-order", "order-select", [card(i)])
    keeper.flush()
    assert kept(path) == [f"card-{i}" for i in range(1201)]
    keeper.close()


def test_closing_writes_what_is_queued(tmp_path):
    path = tmp_path / "fb.sqlite"
    keeper = CardKeeper(FeedbackStore(path), every=5)  # nothing would be written for 5 s
    for i in range(30):
        keeper.keep("ivig-order", "order-sign", [card(i)])
    keeper.close()
    assert len(kept(path)) == 30


def test_an_answer_without_cards_queues_nothing(tmp_path):
    path = tmp_path / "fb.sqlite"
    keeper = CardKeeper(FeedbackStore(path))
    keeper.keep("ivig-order", "order-select", [])
    keeper.flush()
    keeper.close()
    assert kept(path) == []
