"""A changelog record that does not decode is passed over and counted as read, not thrown."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.exceptions import KeyDecodeError, ValueDecodeError
from faust.types import TP, Message

from config import Settings
from streams.app import create_app
from streams.app.changelogs import ChangelogTopic


def _message(tp: TP, offset: int, key: bytes | None, value: bytes | None) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, headers=None, key=key, value=value,
                   checksum=None, tp=tp)


@pytest.mark.parametrize(("key", "value", "error"), [
    (b"k", None, KeyDecodeError),                                  # a tombstone, key not JSON
    (b"\x00\xff" * 10, b"x" * 5_000_000, KeyDecodeError),          # 5 MB, key not JSON
    (b'"RGF0YXNldEV4YW1wbGU6MQ=="', b"\x00\xffnot json", ValueDecodeError),
])
async def test_an_undecodable_record_is_counted_as_read_and_left_out(
    tmp_path: Path, key: bytes, value: bytes | None, error: type[Exception]
) -> None:
    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    table = pipeline.app.tables["done"]
    channel = table.changelog_topic.clone_using_queue(pipeline.app.tables.changelog_queue)
    assert isinstance(channel, ChangelogTopic)  # the clone recovery reads keeps the class
    recovery = pipeline.app.tables.recovery
    tp = TP(table.changelog_topic.get_topic_name(), 3)
    recovery.active_tps.add(tp)
    recovery.active_offsets[tp] = 40
    recovery.active_highwaters[tp] = 41
    message = _message(tp, 41, key, value)

    with pytest.raises(error):  # what Faust's conductor catches before calling the handlers
        await channel.decode(message, propagate=True)
    handler = channel.on_key_decode_error if error is KeyDecodeError else channel.on_value_decode_error
    await handler(error("bad"), message)

    assert recovery.active_offsets[tp] == 41 and not recovery.need_recovery()
    assert pipeline.app.tables.changelog_queue.empty()  # nothing thrown into recovery's queue
    assert len(table.data) == 0


async def test_a_standby_record_is_counted_in_the_standby_offsets(tmp_path: Path) -> None:
    pipeline = create_app(Settings(data_dir=tmp_path), web=False)
    recovery = pipeline.app.tables.recovery
    tp = TP("phoenix-resume-done-changelog", 0)
    recovery.standby_tps.add(tp)
    recovery.pass_over(tp, 7)
    recovery.pass_over(tp, 3)  # an older offset read again does not move it back
    assert recovery.standby_offsets[tp] == 7 and tp not in recovery.active_offsets
    recovery.pass_over(TP("unknown", 0), 9)  # neither active nor standby: nothing to count
    assert TP("unknown", 0) not in recovery.active_offsets
