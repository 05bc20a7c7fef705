"""OpenTelemetry for the stream: one tracer provider per Phoenix project, W3C context in Kafka headers.

Spans are exported over OTLP/HTTP to the Phoenix server, into the experiment's project (the
``openinference.project.name`` resource attribute), with batch export flushed on shutdown.
Each run gets a trace of its own, as with Phoenix's clients, so the trace linked from a run
shows that run only; the run's span *links* to the request's context carried in the work
item's ``traceparent`` header, and the completed-run event carries the run's own context on.

    >>> headers = {"traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    >>> format(span_context_of(extract(headers)).trace_id, "032x")
    '0af7651916cd43dd8448eb211c80319c'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from openinference.semconv.trace import OpenInferenceMimeTypeValues, SpanAttributes
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

PROJECT_ATTRIBUTE = "openinference.project.name"
JSON = OpenInferenceMimeTypeValues.JSON.value
_PROPAGATOR = TraceContextTextMapPropagator()

HeadersArg = Mapping[str, bytes] | list[tuple[str, bytes]] | None


def extract(headers: HeadersArg) -> Context:
    """The trace context carried by Kafka message headers (empty context when none)."""
    carrier: dict[str, str] = {}
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    for key, value in items:
        if key in ("traceparent", "tracestate") and value is not None:
            carrier[key] = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    return _PROPAGATOR.extract(carrier)


def inject(context: Context | None = None) -> dict[str, bytes]:
    """Kafka headers carrying ``context`` (default: the current one)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return {key: value.encode("ascii") for key, value in carrier.items()}


def span_context_of(context: Context) -> SpanContext:
    return trace.get_current_span(context).get_span_context()


def links_to(context: Context) -> list[Link]:
    """A link to the span in ``context``, when it carries one."""
    span_context = span_context_of(context)
    return [Link(span_context)] if span_context.is_valid else []


def trace_id_hex(span: Span) -> str | None:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def new_root_context() -> Context:
    """A fresh, non-recording trace context for a request published from outside any trace."""
    ids = RandomIdGenerator()
    span_context = SpanContext(
        trace_id=ids.generate_trace_id(),
        span_id=ids.generate_span_id(),
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def as_attribute(value: Any) -> str:
    """OpenInference ``*.value`` attributes are JSON text."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def start_span(
    tracer: Tracer | None,
    name: str,
    parent: Context | None,
    *,
    kind: str,
    input_value: Any,
    attributes: Mapping[str, Any],
) -> Span | None:
    """An OpenInference span of ``kind`` in a trace of its own, linked to ``parent``'s span,
    with ``input_value`` as its JSON input; None without a tracer."""
    if tracer is None:
        return None
    return tracer.start_span(
        name,
        links=links_to(parent) if parent is not None else None,
        attributes={
            SpanAttributes.OPENINFERENCE_SPAN_KIND: kind,
            SpanAttributes.INPUT_VALUE: as_attribute(input_value),
            SpanAttributes.INPUT_MIME_TYPE: JSON,
            **attributes,
        },
    )


def finish_span(
    span: Span | None, end: datetime, *, output: Any = None, error: str | None = None
) -> str | None:
    """End ``span`` at ``end``, OK with ``output`` as its JSON output or ERROR with ``error``;
    returns its trace id, which Phoenix records with the run or evaluation (None: no span)."""
    if span is None:
        return None
    if error is None:
        span.set_attribute(SpanAttributes.OUTPUT_VALUE, as_attribute(output))
        span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, JSON)
        span.set_status(Status(StatusCode.OK))
    else:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=int(end.timestamp() * 1e9))
    return trace_id_hex(span)


class Tracing:
    """Tracer providers per Phoenix project, created on first use and flushed on shutdown.

    The first exporter of a process costs ~40-50 ms to build (its HTTP transport imports
    ``requests`` and builds a session), and it was built when the first task asked for its
    project's tracer: every run's first task waited for it. :meth:`prepare` builds one ahead,
    while a run starts (its project is not known yet), and the first project's tracer takes it.
    The exporter's module (~30 ms more to import) is imported with the first exporter, so a
    Kafka one-shot run imports it in that thread, off its start.
    """

    def __init__(
        self, endpoint: str | None, headers: Mapping[str, str] | None = None, *, enabled: bool = True
    ) -> None:
        self.endpoint = endpoint
        self._headers = dict(headers or {})
        self.enabled = enabled and endpoint is not None
        self._providers: dict[str, TracerProvider] = {}
        # One tracer per project, made once: the SDK's get_tracer builds a new one each call
        # and resets the warnings filters as it does (tens of microseconds a run).
        self._tracers: dict[str, Tracer] = {}
        self._spare: OTLPSpanExporter | None = None
        self._lock = threading.Lock()  # prepare() may run in a thread beside the loop

    @classmethod
    def disabled(cls) -> Tracing:
        """Tracing that makes no spans: nowhere to export them."""
        return cls(None, enabled=False)

    @classmethod
    def for_phoenix(
        cls, base_url: str, headers: Mapping[str, str] | None, *, enabled: bool = True
    ) -> Tracing:
        return cls(f"{base_url.rstrip('/')}/v1/traces", headers, enabled=enabled)

    def tracer(self, project_name: str | None) -> Tracer | None:
        """The tracer for a project, or None when tracing is off or there is no project."""
        if not self.enabled or not project_name:
            return None
        tracer = self._tracers.get(project_name)
        if tracer is None:
            provider = TracerProvider(resource=Resource.create({PROJECT_ATTRIBUTE: project_name}))
            with self._lock:
                exporter, self._spare = self._spare, None
            if exporter is None:
                exporter = self._exporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
            self._providers[project_name] = provider
            tracer = self._tracers[project_name] = provider.get_tracer("phoenix-resume-stream")
        return tracer

    def prepare(self) -> None:
        """Build an exporter now for the first project's tracer (nothing when tracing is off,
        a tracer was made already, or one is ready); safe to call from another thread."""
        if not self.enabled or self._tracers or self._spare is not None:
            return
        exporter = self._exporter()
        with self._lock:
            if self._spare is None and not self._tracers:
                self._spare, exporter = exporter, None
        if exporter is not None:  # a tracer was made meanwhile, with an exporter of its own
            exporter.shutdown()

    def _exporter(self) -> OTLPSpanExporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=self.endpoint, headers=self._headers)

    def flush(self, timeout_millis: int = 10_000) -> None:
        for provider in self._providers.values():
            provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        for provider in self._providers.values():
            provider.shutdown()
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.shutdown()
        self._providers.clear()
        self._tracers.clear()
