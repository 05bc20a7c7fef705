"""One translation of the Kafka settings: aiokafka's keyword arguments and Faust's credentials.

Every client of ours (the workers' Faust app, producers, admin clients, the example consumer)
connects through these, so security settings are read in one place.

    >>> from config import Settings
    >>> connection_options(Settings(kafka_bootstrap_servers="a:1,b:2"))["bootstrap_servers"]
    ['a:1', 'b:2']
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

from config import Settings
from streams.kafka.errors import KafkaAuthError, KafkaUnavailableError

if TYPE_CHECKING:  # the lease and a one-shot run's clients use this module without Faust
    import faust


def connection_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments shared by every client of ours (security included)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_hosts,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = settings.kafka_ssl_context()
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # checked by the settings model
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The same security settings in Faust's form, for the workers' app."""
    import faust

    options = connection_options(settings)
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=options.get("ssl_context"),
        )
    if "ssl_context" in options:
        return faust.SSLCredentials(options["ssl_context"])
    return None


async def check_kafka(settings: Settings, timeout: float = 15.0) -> None:
    """Connect to a bootstrap server once, so a wrong password or address fails clearly.

    aiokafka's clients only log an authentication failure and then report that they
    could not bootstrap; this names the cause (never the password).
    """
    options = connection_options(settings)
    last: Exception | None = None
    for hostport in settings.kafka_hosts:
        host, _, port = hostport.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    int(port),
                    security_protocol=options["security_protocol"],
                    ssl_context=options.get("ssl_context"),
                    sasl_mechanism=options.get("sasl_mechanism", "PLAIN"),
                    sasl_plain_username=options.get("sasl_plain_username"),
                    sasl_plain_password=options.get("sasl_plain_password"),
                ),
                timeout,
            )
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            raise KafkaAuthError(
                f"Kafka at {hostport} refused the credentials of user "
                f"{settings.kafka_sasl_username!r} ({settings.kafka_security_protocol}/"
                f"{settings.kafka_sasl_mechanism}): {type(exc).__name__}; check "
                "RESUME_KAFKA_SASL_USERNAME and RESUME_KAFKA_SASL_PASSWORD"
            ) from None
        except (OSError, TimeoutError, AIOKafkaError) as exc:
            last = exc
            continue
        conn.close()
        return
    raise KafkaUnavailableError(
        f"no Kafka broker answered at {settings.kafka_bootstrap_servers} "
        f"({settings.kafka_security_protocol}): {type(last).__name__}: {last}"
    )
