"""The status board: the latest status per request, bounded, with the worker's own summaries."""

from __future__ import annotations

import json
from datetime import timedelta

from streams.board import Board
from streams.codec import PydanticCodec, Undecodable
from streams.events import RequestState, StatusEvent, utcnow


def status(rid: str, state: str, *, experiment: str = "e1", **summary) -> StatusEvent:
    return StatusEvent(request_id=rid, experiment_id=experiment, state=RequestState(state),
                       message=f"{rid} {state}", summary=summary)


def test_the_latest_status_wins_and_a_late_progress_event_does_not_revive_an_ended_request():
    board = Board()
    board.add(status("r1", "running", incomplete_at_start=10, succeeded=2))
    board.add(status("r1", "complete", incomplete_at_start=10, succeeded=9, failed=1))
    board.add(status("r1", "running", incomplete_at_start=10, succeeded=5))
    [row] = board.rows()
    assert (row["state"], row["done"], row["total"], row["failed"]) == ("complete", 10, 10, 1)
    assert row["source"] == "status topic" and row["message"] == "r1 complete"
    assert board.events == 3


def test_active_requests_are_all_kept_and_only_the_recent_ended_ones():
    board = Board(recent=2)
    for n in range(5):
        board.add(status(f"done{n}", "complete"))
    for n in range(4):
        board.add(status(f"live{n}", "running"))
    ids = [r["request_id"] for r in board.rows()]
    assert sorted(ids[:4]) == ["live0", "live1", "live2", "live3"]
    assert sorted(ids[4:]) == ["done3", "done4"]


def test_a_request_that_never_ends_is_dropped_once_too_many_others_were_heard_of():
    board = Board(active=2)
    board.add(status("abandoned", "running"))
    board.add(status("a", "running"))
    board.add(status("b", "running"))
    board.add(status("a", "running"))
    assert sorted(r["request_id"] for r in board.rows()) == ["a", "b"]


def test_the_workers_own_summary_replaces_the_last_progress_event():
    board = Board()
    board.add(status("r1", "running", incomplete_at_start=8, succeeded=1))
    local = {"request_id": "r1", "experiment_id": "e1", "state": "running",
             "incomplete_at_start": 8, "succeeded": 6, "failed": 1,
             "created_at": utcnow().isoformat()}
    [row] = board.rows([local])
    assert (row["succeeded"], row["done"], row["source"]) == (6, 7, "coordinator")
    assert row["message"] == "r1 running"  # what only the status event said is kept


def test_before_the_experiment_is_read_the_total_is_what_was_published():
    board = Board()
    board.add(status("r1", "paging", published=50))
    assert board.rows()[0]["total"] == 50


def test_active_rows_come_newest_first_then_ended_ones_latest_first():
    board = Board()
    now = utcnow()
    board.add(status("old", "running", created_at=(now - timedelta(minutes=5)).isoformat()))
    board.add(status("new", "running", created_at=now.isoformat()))
    board.add(status("ended-early", "complete",
                     finished_at=(now - timedelta(minutes=3)).isoformat()))
    board.add(status("ended-late", "aborted", finished_at=now.isoformat()))
    assert [r["request_id"] for r in board.rows()] == ["new", "old", "ended-late", "ended-early"]


def test_an_experiments_requests_are_found_by_its_id():
    board = Board()
    board.add(status("r1", "running", experiment="e1"))
    board.add(status("r2", "complete", experiment="e2"))
    assert [s.request_id for s in board.for_experiment("e2")] == ["r2"]
    assert board.for_experiment("e3") == []



def test_rows_of_every_status_event_that_decodes_add_up() -> None:
    # What the status topic feeds the board has passed StatusEvent's summary check: its
    # counts are numbers, so the page's rows (and /status.json) can always be built.
    codec = PydanticCodec(StatusEvent)
    board = Board()
    for summary in ({"succeeded": "many"}, {"evaluations": {"x": None}}, {"succeeded": 2}):
        event = {"request_id": "r", "experiment_id": "e", "state": "running", "message": "m",
                 "summary": summary}
        decoded = codec.loads(json.dumps(event).encode())
        if not isinstance(decoded, Undecodable):
            board.add(decoded)
    [only] = board.rows()
    assert only["succeeded"] == 2 and only["done"] == 2
