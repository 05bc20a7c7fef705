"""A lean Kafka one-shot process: its path imports Faust without aiohttp and without the web
views' prometheus_client (a one-shot worker has no web server), and a worker that does serve
the web still gets the real aiohttp afterwards. Each check runs in a fresh interpreter."""

from __future__ import annotations

from tests.unit.producers.test_embedded_imports import loaded_after


def test_the_kafka_one_shot_path_loads_faust_but_not_aiohttp_or_prometheus_client() -> None:
    loaded = loaded_after("""
        import producers.private_run
        from config import Settings
        from streams.app import create_app
        create_app(Settings(tracing_enabled=False), web=False, durable_tables=False)
    """, ("faust", "aiohttp", "prometheus_client"))
    assert loaded == ["faust"]


def test_after_faust_s_types_aiohttp_is_the_real_one_and_a_web_app_builds() -> None:
    loaded = loaded_after("""
        import streams.app
        import faust.types.web
        assert faust.types.web.HttpClientT.__module__ == "streams.kafka.lean"
        import aiohttp.client
        assert aiohttp.client.ClientSession.__module__ == "aiohttp.client"
        from config import Settings
        pipeline = streams.app.create_app(Settings(tracing_enabled=False), web=True)
        import asyncio

        async def session_class():
            session = pipeline.app.conf.HttpClient()
            await session.close()
            return type(session)

        assert asyncio.run(session_class()) is aiohttp.client.ClientSession
    """, ("aiohttp",))
    assert loaded == ["aiohttp"]


def test_faust_s_types_imported_first_elsewhere_are_left_as_they_are() -> None:
    """aiohttp imported before: nothing is masked (the alias is aiohttp's class)."""
    assert loaded_after("""
        import aiohttp.client
        import streams.codec
        import faust.types.web
        assert faust.types.web.HttpClientT is aiohttp.client.ClientSession
    """, ("aiohttp",)) == ["aiohttp"]


def test_the_lease_the_run_s_clients_and_the_private_run_module_import_no_faust() -> None:
    """What the event loop runs while a thread imports Faust and builds the app
    (producers.private_run.build_pipeline): Faust there would leave the thread nothing to
    overlap."""
    assert loaded_after("import producers.private_run, producers.lease, producers.kafka",
                        ("faust", "mode")) == []


def test_the_namespace_s_topics_made_before_the_app_are_the_ones_its_worker_subscribes_to() -> None:
    """``pipeline_topics`` is kept by hand beside ``streams.app.topics``: a private run's worker
    subscribes to exactly these, with these partition counts (no changelogs: in-memory
    tables), so nothing is left to create once the app is built."""
    from producers.private_run import isolated
    from streams.app import create_app
    from streams.app.startup import worker_topics
    from streams.kafka.admin import pipeline_topics

    from config import Settings

    for base in (Settings(tracing_enabled=False),
                 Settings(tracing_enabled=False, work_partitions=4, event_partitions=2)):
        settings = isolated(base)
        pipeline = create_app(settings, web=False, durable_tables=False)
        subscribed = {name: spec.partitions for name, spec in worker_topics(pipeline).items()}
        assert subscribed == pipeline_topics(settings)
        assert all(not spec.config for spec in worker_topics(pipeline).values())


def test_the_app_s_build_pauses_the_collector_and_leaves_it_as_it_found_it() -> None:
    """On before the build: off during it, on after it; off before: off after."""
    for before in ("gc.enable()", "gc.disable()"):
        loaded_after(f"""
            import gc
            {before}
            was = gc.isenabled()
            from config import Settings
            import producers.private_run as private_run
            import streams.app.factory as factory
            seen = []
            original = factory.create_app

            def create_app(*args, **kwargs):
                seen.append(gc.isenabled())
                return original(*args, **kwargs)

            factory.create_app = create_app
            import streams.app
            streams.app.create_app = create_app
            private_run.build_pipeline(
                private_run.isolated(Settings(tracing_enabled=False)), None, None,
                durable_tables=False)
            assert seen == [False], seen
            assert gc.isenabled() is was
        """)


def test_the_span_exporter_s_module_is_imported_with_the_first_exporter() -> None:
    """Not by the command's imports (a Kafka run imports it in its warm-up thread, after the
    worker started); a tracing that exports still gets its exporter."""
    loaded_after("""
        import sys
        import producers.cli
        name = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
        assert name not in sys.modules
        from streams.tracing import Tracing
        tracing = Tracing.for_phoenix("http://127.0.0.1:1", None)
        tracing.prepare()
        assert name in sys.modules
        assert tracing.tracer("project") is not None
        tracing.shutdown()
    """)
