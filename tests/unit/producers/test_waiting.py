"""request --wait: says when nobody picks the request up, and gives up after --timeout."""

from __future__ import annotations

import asyncio

import pytest

from config import load_settings
from producers.errors import WaitTimeoutError
from producers.waiting import wait_for_final
from streams.events import RequestState, ResumeRequest, StatusEvent

REQUEST = ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="answer")


class Follower:
    """Yields scripted status events after scripted pauses."""

    def __init__(self, script: list[tuple[float, RequestState]]) -> None:
        self.settings = load_settings()
        self.script = script

    async def follow(self, request_id: str):
        for pause, state in self.script:
            await asyncio.sleep(pause)
            yield StatusEvent(request_id=request_id, experiment_id=REQUEST.experiment_id,
                              state=state, message=state.value, summary={"state": state.value})
        await asyncio.sleep(3600)


async def test_the_final_event_is_returned_and_every_event_passed_on() -> None:
    seen, notices = [], []
    final = await wait_for_final(
        Follower([(0, RequestState.RUNNING), (0, RequestState.COMPLETE)]), REQUEST, seen.append,
        notice=notices.append, notice_after=0.05,
    )
    assert final.state is RequestState.COMPLETE
    assert [s.state for s in seen] == [RequestState.RUNNING, RequestState.COMPLETE]
    await asyncio.sleep(0.1)
    assert notices == []


async def test_silence_is_reported_and_the_wait_goes_on() -> None:
    notices: list[str] = []
    final = await wait_for_final(
        Follower([(0.2, RequestState.COMPLETE)]), REQUEST, lambda s: None,
        notice=notices.append, notice_after=0.05,
    )
    assert final.state is RequestState.COMPLETE
    [text] = notices
    assert f"no worker has picked up request {REQUEST.request_id}" in text
    assert "'phoenix-resume.'" in text and "'answer'" in text


async def test_timeout_raises_wait_timeout_with_the_last_summary() -> None:
    with pytest.raises(WaitTimeoutError, match="did not end within 0.1 s \\(it was running\\)") as info:
        await wait_for_final(Follower([(0, RequestState.RUNNING)]), REQUEST, lambda s: None,
                             timeout=0.1)
    assert info.value.summary == {"state": "running"}


async def test_timeout_without_any_event_says_nobody_picked_it_up() -> None:
    with pytest.raises(WaitTimeoutError, match="no worker picked it up"):
        await wait_for_final(Follower([]), REQUEST, lambda s: None, timeout=0.05)
