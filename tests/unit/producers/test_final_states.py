"""The final states issue 16 added end a caller's wait with a named error, not a success."""

from __future__ import annotations

import pytest

from producers.errors import IncompleteError, RequestRejectedError
from producers.runner import raise_for_final
from streams.events import RequestState, StatusEvent


def final(state: RequestState, message: str) -> StatusEvent:
    return StatusEvent(request_id="r1", experiment_id="e1", state=state, message=message,
                       summary={"request_id": "r1", "dead_lettered": 2})


def test_incomplete_raises_incomplete_error_with_the_replay_command() -> None:
    text = "Incomplete: 2 item(s) ... run them with: phoenix-resume dead-letters --replay"
    with pytest.raises(IncompleteError, match="phoenix-resume dead-letters") as raised:
        raise_for_final(final(RequestState.INCOMPLETE, text))
    assert raised.value.summary["dead_lettered"] == 2


def test_a_duplicate_request_id_is_a_rejection() -> None:
    with pytest.raises(RequestRejectedError, match="used by an earlier request"):
        raise_for_final(final(RequestState.DUPLICATE, "request id 'r1' was used by an earlier request"))


def test_complete_returns_the_summary() -> None:
    assert raise_for_final(final(RequestState.COMPLETE, "done"))["request_id"] == "r1"
