"""Named errors for what can go wrong talking to Kafka: no broker, refused credentials, topics."""

from __future__ import annotations

from streams.errors import PhoenixResumeError


class KafkaError(PhoenixResumeError):
    """Base class of our Kafka errors (aiokafka's own errors are translated into these)."""


class KafkaUnavailableError(KafkaError):
    """No broker answered at the configured bootstrap servers."""


class KafkaAuthError(KafkaError):
    """The brokers refused our credentials or security settings."""


class TopicCreationError(KafkaError):
    """The broker refused to create a topic (replication too high, ACLs, a bad config)."""


class TopicsNotReadyError(KafkaError):
    """Topics were created but the broker did not report their partitions' leaders in time."""


class TopicReadTimeoutError(KafkaError):
    """Reading a topic whole did not reach the end it had when the read began, in time."""
