"""Consumer-group lookups: whether any member of a group (a deployment's workers) is alive."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError as AIOKafkaError

from config import Settings
from streams.kafka.connection import connection_options

log = logging.getLogger(__name__)


async def live_members(settings: Settings, group_id: str) -> int | None:
    """How many members ``group_id`` has now (0: none alive, or no such group); None when the
    broker would not say (unreachable, not authorized): a caller must not read that as 0."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    try:
        await admin.start()
        described = await admin.describe_consumer_groups([group_id])
    except (AIOKafkaError, OSError) as exc:
        log.debug("could not describe group %s: %s", group_id, exc)
        return None
    finally:
        await admin.close()
    groups = [group for response in described for group in response.to_object()["groups"]]
    if not groups or any(group["error_code"] != 0 for group in groups):
        return None
    return sum(len(group["members"]) for group in groups)
