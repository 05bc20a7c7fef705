"""live_members: a broker that will not say is not a group without members."""

from __future__ import annotations

import socket

from config import Settings
from streams.kafka.groups import live_members


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_no_broker_is_unknown_not_empty() -> None:
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    assert await live_members(settings, settings.app_id) is None
