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
