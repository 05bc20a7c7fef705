"""Dead letters: markers hide handled letters, so replays and drops never grow the list."""

from __future__ import annotations

from dataclasses import dataclass

from producers.deadletters import HANDLED, sort_letters


@dataclass
class Record:
    partition: int
    offset: int
    headers: list[tuple[str, bytes]]
    key: bytes | None = b"k"
    value: bytes | None = b"{bad json"


def letter(partition: int, offset: int, source_offset: int = 7) -> Record:
    return Record(partition, offset, [
        ("dlq.reason", b"invalid"), ("dlq.error", b"not JSON"), ("dlq.topic", b"p.work"),
        ("dlq.partition", b"1"), ("dlq.offset", str(source_offset).encode()),
    ])


def marker(partition: int, offset: int, at: str) -> Record:
    return Record(partition, offset, [(HANDLED, at.encode()), ("dlq.action", b"dropped")], value=b"")


def test_letters_are_read_with_their_headers() -> None:
    [only] = sort_letters([letter(0, 3)])
    assert (only.position, only.reason, only.error, only.source_topic) == ("0:3", "invalid", "not JSON", "p.work")
    assert (only.source_partition, only.source_offset, only.value) == (1, 7, b"{bad json")


def test_a_marker_hides_the_letter_it_names_and_is_not_a_letter() -> None:
    records = [letter(0, 0), letter(0, 1), letter(1, 0), marker(0, 2, "0:1")]
    assert [x.position for x in sort_letters(records)] == ["0:0", "1:0"]
    assert [x.position for x in sort_letters(records, include_handled=True)] == ["0:0", "0:1", "1:0"]


def test_three_letters_replayed_that_fail_again_are_three_letters() -> None:
    first = [letter(0, 0), letter(0, 1), letter(0, 2)]
    replayed = [marker(0, 3, "0:0"), marker(0, 4, "0:1"), marker(0, 5, "0:2")]
    failed_again = [letter(0, 6, 20), letter(0, 7, 21), letter(0, 8, 22)]
    listed = sort_letters(first + replayed + failed_again)
    assert [x.position for x in listed] == ["0:6", "0:7", "0:8"]


def test_a_letter_is_replayable_only_to_the_deployments_own_topics() -> None:
    # Anyone can write a "letter" to the dead-letter topic naming any topic, or none.
    from config import Settings
    from producers.deadletters import replay_targets, why_not_replayable

    settings = Settings(topic_prefix="p.")
    targets = replay_targets(settings)
    [ok] = sort_letters([letter(0, 0)])
    assert why_not_replayable(ok, targets) is None
    for topic in (b"", b"bad name!!", b"other.work", b"p.dead-letters", b"p.leases", b"p.limiters"):
        record = letter(0, 1)
        record.headers = [(k, topic if k == "dlq.topic" else v) for k, v in record.headers]
        [hostile] = sort_letters([record])
        assert "is not one of this deployment's topics" in why_not_replayable(hostile, targets)
    record = letter(0, 2)
    record.headers += [("dlq.truncated", b"1"), ("dlq.size", b"5000000")]
    [cut] = sort_letters([record])
    assert "only the first 9 of its 5000000 bytes" in why_not_replayable(cut, targets)
