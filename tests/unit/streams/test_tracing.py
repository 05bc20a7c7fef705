"""W3C trace context through Kafka headers, and the per-project tracer providers."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from streams.tracing import (
    PROJECT_ATTRIBUTE,
    Tracing,
    as_attribute,
    extract,
    finish_span,
    inject,
    links_to,
    new_root_context,
    span_context_of,
    start_span,
    trace_id_hex,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_extract_then_inject_round_trips_traceparent() -> None:
    context = extract({"traceparent": TRACEPARENT.encode(), "other": b"x"})
    sc = span_context_of(context)
    assert format(sc.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(sc.span_id, "016x") == "b7ad6b7169203331"
    assert sc.is_remote and sc.trace_flags.sampled
    assert inject(context) == {"traceparent": TRACEPARENT.encode()}


def test_inject_then_extract_round_trips_a_new_root() -> None:
    root = new_root_context()
    headers = inject(root)
    assert set(headers) == {"traceparent"}
    assert all(isinstance(v, bytes) for v in headers.values())
    back = span_context_of(extract(headers))
    original = span_context_of(root)
    assert (back.trace_id, back.span_id) == (original.trace_id, original.span_id)
    assert back.trace_flags.sampled


def test_extract_accepts_a_list_of_pairs_and_str_values() -> None:
    assert span_context_of(extract([("traceparent", TRACEPARENT.encode())])).is_valid
    assert span_context_of(extract({"traceparent": TRACEPARENT})).is_valid


def test_tracestate_travels_too() -> None:
    headers = {"traceparent": TRACEPARENT.encode(), "tracestate": b"vendor=abc"}
    assert inject(extract(headers)) == headers


def test_missing_or_garbage_headers_give_an_empty_context() -> None:
    for headers in (None, [], {}, {"traceparent": b"garbage"}, {"traceparent": None}):
        context = extract(headers)
        assert not span_context_of(context).is_valid
        assert links_to(context) == []
        assert inject(context) == {}


def test_new_root_contexts_are_valid_sampled_and_distinct() -> None:
    a, b = span_context_of(new_root_context()), span_context_of(new_root_context())
    assert a.is_valid and b.is_valid and a.trace_flags.sampled
    assert a.trace_id != b.trace_id


def test_links_to_a_valid_context() -> None:
    context = extract({"traceparent": TRACEPARENT.encode()})
    (link,) = links_to(context)
    assert format(link.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"


def test_trace_id_hex() -> None:
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("s")
    assert trace_id_hex(span) == format(span.get_span_context().trace_id, "032x")
    assert len(trace_id_hex(span)) == 32
    span.end()
    assert trace_id_hex(trace.INVALID_SPAN) is None


def test_as_attribute() -> None:
    assert as_attribute("plain") == "plain"
    assert as_attribute({"q": "é", "n": [1]}) == '{"q": "é", "n": [1]}'
    assert as_attribute(None) == "null"


def test_disabled_or_projectless_tracing_has_no_tracer() -> None:
    assert Tracing("http://p/v1/traces", enabled=False).tracer("proj") is None
    assert Tracing("http://p/v1/traces").tracer(None) is None
    assert Tracing("http://p/v1/traces").tracer("") is None


def test_disabled_tracing_has_no_endpoint_and_no_tracer() -> None:
    tracing = Tracing.disabled()
    assert (tracing.endpoint, tracing.enabled) == (None, False)
    assert tracing.tracer("proj") is None
    assert start_span(None, "x", None, kind="CHAIN", input_value=1, attributes={}) is None
    assert finish_span(None, datetime.now(UTC), output=1) is None


def test_a_span_started_then_finished_with_output_or_error() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    parent = new_root_context()
    end = datetime(2025, 1, 2, tzinfo=UTC)

    ok = start_span(tracer, "ok", parent, kind="CHAIN", input_value={"q": 1}, attributes={"n": 2})
    trace_id = finish_span(ok, end, output={"a": 1})
    failed = start_span(tracer, "failed", None, kind="EVALUATOR", input_value="q", attributes={})
    finish_span(failed, end, error="ValueError: no")

    first, second = exporter.get_finished_spans()
    assert trace_id == format(first.context.trace_id, "032x")
    assert dict(first.attributes) == {
        "openinference.span.kind": "CHAIN", "input.value": '{"q": 1}',
        "input.mime_type": "application/json", "n": 2,
        "output.value": '{"a": 1}', "output.mime_type": "application/json",
    }
    assert [link.context.span_id for link in first.links] == [span_context_of(parent).span_id]
    assert first.status.status_code is StatusCode.OK and first.end_time == int(end.timestamp() * 1e9)
    assert second.status.status_code is StatusCode.ERROR
    assert second.status.description == "ValueError: no"
    assert "output.value" not in second.attributes and not second.links


def test_one_provider_per_project() -> None:
    tracing = Tracing.for_phoenix("http://phoenix:6006/", {"authorization": "Bearer k"})
    assert tracing.endpoint == "http://phoenix:6006/v1/traces"
    try:
        assert tracing.tracer("a") is not None
        assert tracing.tracer("b") is not None
        assert tracing.tracer("a") is not None
        assert tracing.tracer("a") is tracing.tracer("a") is not tracing.tracer("b")
        providers = tracing._providers
        assert sorted(providers) == ["a", "b"]
        assert providers["a"].resource.attributes[PROJECT_ATTRIBUTE] == "a"
    finally:
        tracing.shutdown()  # nothing was recorded, so nothing is exported
    assert tracing._providers == {} and tracing._tracers == {}


def _processor_exporter(tracing: Tracing, project: str) -> object:
    processor = tracing._providers[project]._active_span_processor._span_processors[0]
    return processor.span_exporter


def test_the_exporter_prepared_ahead_serves_the_first_project_only() -> None:
    tracing = Tracing("http://127.0.0.1:1/v1/traces")
    tracing.prepare()
    spare = tracing._spare
    assert spare is not None
    tracing.tracer("p1")
    assert _processor_exporter(tracing, "p1") is spare and tracing._spare is None
    tracing.prepare()  # a tracer exists: nothing more is built ahead
    assert tracing._spare is None
    tracing.tracer("p2")
    assert _processor_exporter(tracing, "p2") is not spare
    tracing.shutdown()


def test_preparing_disabled_tracing_builds_nothing_and_a_spare_is_shut_down() -> None:
    off = Tracing.disabled()
    off.prepare()
    assert off._spare is None
    tracing = Tracing("http://127.0.0.1:1/v1/traces")
    tracing.prepare()
    spare = tracing._spare
    tracing.shutdown()
    assert tracing._spare is None and spare._shutdown
