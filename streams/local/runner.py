"""The embedded runner: one request through the pipeline's steps in this process, on queues.

The same handlers the Faust agents drive (``streams.steps``) consume asyncio queues instead of
topics, one queue per topic role, with the consumers a worker would have: one for ``requests``,
one for ``control`` (in order, as one control partition is), one for ``completed-runs``, four
times the task concurrency for ``work`` (``LOCAL_RECORDING_OVERLAP``) and twice the evaluator
concurrency for ``evaluations`` (``RECORDING_OVERLAP``). The watchdog
ticks on its timer. Status events go to a callback; dead letters are kept in memory.

The queues are unbounded: backpressure is the coordinator's, which stops paging while a
request has ``max_in_flight_per_request`` unfinished pairs, exactly as on Kafka. This is Beam's
DirectRunner to the Faust worker's distributed runner: one pipeline, two drivers.

    >>> import asyncio
    >>> from config import Settings
    >>> from streams.events import ResumeRequest
    >>> request = ResumeRequest(experiment_id="RXhwZXJpbWVudDox", task="missing")
    >>> final = asyncio.run(run_local(Settings(tracing_enabled=False), request))
    >>> final.state.value, final.message.startswith("unknown task 'missing'")
    ('rejected', True)
    >>> final.summary["runner"]
    'local'
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from streams.context import Context, Tables
from streams.effects import Envelope, Origin
from streams.errors import PhoenixResumeError
from streams.evaluators import EvaluatorRegistry
from streams.events import ResumeRequest, StatusEvent
from streams.publish import GlobalTable, Headers, Publisher, TopicRole
from streams.registry import TaskRegistry
from streams.steps import RECORDING_OVERLAP, Step, Steps, process
from streams.teams import TeamDirectory
from streams.tracing import extract

log = logging.getLogger(__name__)

Message = tuple[str | bytes | None, Any, Headers | None]

#: work consumers per task slot here: a consumer is only a coroutine in this process, and with
#: two per slot a pause of the server (a batch of spans ingested) held every one in its POST
#: and left every slot idle (~0.45 s in a 0.2 s-task run at concurrency 5; ~0.1 s with four)
LOCAL_RECORDING_OVERLAP = 4


class LocalRunError(PhoenixResumeError):
    """The embedded run could not start its request: a step failed before the coordinator
    kept a summary of it, so no watchdog or verification pass would ever end it."""


@dataclass(frozen=True)
class LocalDeadLetter:
    """A message a step could not use or finish, kept in memory for the summary."""

    reason: str
    error: str
    topic: str

    def public(self) -> dict[str, str]:
        return {"reason": self.reason, "error": self.error, "topic": self.topic}


def _header(headers: Headers | None, name: str) -> str:
    return (headers or {}).get(name, b"").decode("utf-8", "replace")


@dataclass
class QueueSender:
    """A :class:`streams.publish.Sender` over in-process queues, one per consumed topic role."""

    tables: Tables
    on_status: Callable[[StatusEvent], None]
    on_dead_letter: Callable[[LocalDeadLetter], None] = lambda letter: None
    queues: dict[str, asyncio.Queue[Message]] = field(default_factory=dict)
    dead_letters: list[LocalDeadLetter] = field(default_factory=list)

    def queue(self, role: TopicRole) -> asyncio.Queue[Message]:
        queue = self.queues.get(role)
        if queue is None:
            queue = self.queues[role] = asyncio.Queue()
        return queue

    async def send(
        self, role: TopicRole, key: str | bytes | None, value: Any, headers: Headers | None
    ) -> None:
        if role == "status":
            self.on_status(value)
        elif role == "dead_letters":
            letter = LocalDeadLetter(_header(headers, "dlq.reason"),
                                     _header(headers, "dlq.error"), _header(headers, "dlq.topic"))
            self.dead_letters.append(letter)
            self.on_dead_letter(letter)
        else:
            # Values are immutable pydantic models: handing the object over is what a topic
            # round trip through the codec would give back.
            self.queue(role).put_nowait((key, value, headers))

    def broadcast(self, table: GlobalTable, key: str, value: str) -> None:
        getattr(self.tables, table)[key] = value

    async def flush(self) -> None:
        """Nothing to make durable: the run's state lives and dies with this process."""


class LocalRun:
    """One request's pipeline in this process: its context, queues and consumers."""

    def __init__(
        self,
        settings: Settings,
        *,
        tasks: TaskRegistry | None = None,
        evaluators: EvaluatorRegistry | None = None,
        teams: TeamDirectory | None = None,
        on_status: Callable[[StatusEvent], None] | None = None,
        steps: Callable[[Context], Steps] = Steps.build,
    ) -> None:
        self.settings = settings
        self.context = Context.build(
            settings, Tables.in_memory(), tasks=tasks, evaluators=evaluators, teams=teams,
            prometheus=False,  # no web server here: the summary and snapshot carry the counts
        )
        # A caller may wrap a step (a test that loses work on purpose), as with create_app.
        self.steps = steps(self.context)
        self.sender = QueueSender(self.context.tables, self._status, self._dead_letter)
        self.publisher = Publisher(self.sender, self.context.metrics)
        self._on_status = on_status
        self._request_id: str | None = None
        self._final: asyncio.Future[StatusEvent] | None = None

    @property
    def dead_letters(self) -> list[LocalDeadLetter]:
        return self.sender.dead_letters

    def _status(self, status: StatusEvent) -> None:
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:  # a caller's display must not stop the run
                log.exception("on_status failed on %s", status.state.value)
        final = self._final
        if (
            final is not None and not final.done() and status.request_id == self._request_id
            and status.state.is_final
        ):
            final.set_result(status)

    def _dead_letter(self, letter: LocalDeadLetter) -> None:
        """A request whose start failed has no summary: nothing would ever end it (on Kafka
        it would wait for a replay of the dead letter); here the run ends with the error."""
        final, topics = self._final, self.settings.topics
        if (
            final is not None and not final.done()
            and letter.topic in (topics.requests, topics.control)
            and self._request_id not in self.context.tables.summaries
        ):
            final.set_exception(LocalRunError(
                f"the request could not be started ({letter.reason}): {letter.error}"
            ))

    def _consumers(self) -> list[tuple[TopicRole, Step, int]]:
        steps, settings = self.steps, self.settings
        return [
            ("requests", steps.intake, 1),
            ("control", steps.coordinate, 1),
            ("work", steps.run_task, LOCAL_RECORDING_OVERLAP * settings.task_concurrency),
            ("completed_runs", steps.dispatch, 1),
            ("evaluations", steps.evaluate, RECORDING_OVERLAP * settings.evaluator_concurrency),
        ]

    async def _consume(
        self, role: TopicRole, step: Step, offsets: itertools.count[int]
    ) -> None:
        queue = self.sender.queue(role)
        topic = getattr(self.settings.topics, role)
        while True:
            key, value, headers = await queue.get()
            raw_key = key.encode() if isinstance(key, str) else key
            envelope = Envelope(
                value, Origin(topic, 0, next(offsets), raw_key),
                extract(headers) if headers else None,
            )
            effects = await process(step, envelope)
            await self.publisher.publish(effects, envelope.parent)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_seconds)
            await self.publisher.publish(self.steps.watchdog.tick())

    async def run(self, request: ResumeRequest) -> StatusEvent:
        """Run ``request`` to its final status event; stop every consumer and close."""
        self._request_id = request.request_id
        self._final = asyncio.get_running_loop().create_future()
        workers = [asyncio.create_task(self._watchdog(), name="watchdog")]
        for role, step, count in self._consumers():
            offsets = itertools.count()  # consumers of one role share its offsets
            workers += [
                asyncio.create_task(self._consume(role, step, offsets), name=f"{role}-{i}")
                for i in range(count)
            ]
        try:
            await self.sender.send("requests", request.experiment_id, request, None)
            await asyncio.wait([self._final, *workers], return_when=asyncio.FIRST_COMPLETED)
            if not self._final.done():  # a consumer stopped: only a bug outside a step can
                for worker in workers:
                    if worker.done() and not worker.cancelled() and worker.exception():
                        raise worker.exception()  # type: ignore[misc]
            return self._final.result()
        finally:
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
            await self.context.aclose()


async def run_local(
    settings: Settings,
    request: ResumeRequest,
    *,
    tasks: TaskRegistry | None = None,
    evaluators: EvaluatorRegistry | None = None,
    on_status: Callable[[StatusEvent], None] | None = None,
    teams: TeamDirectory | None = None,
    steps: Callable[[Context], Steps] = Steps.build,
) -> StatusEvent:
    """Run ``request`` in this process; its final status event, its summary saying
    ``runner: local`` and listing the dead letters (``dead_letters``), if any."""
    local = LocalRun(settings, tasks=tasks, evaluators=evaluators, teams=teams,
                     on_status=on_status, steps=steps)
    final = await local.run(request)
    summary: dict[str, Any] = {**final.summary, "runner": "local"}
    if local.dead_letters:
        summary["dead_letters"] = [letter.public() for letter in local.dead_letters]
    if limiters := local.context.limiters.snapshot():
        summary["limiters"] = limiters  # one member: the whole budget
    return final.model_copy(update={"summary": summary})
