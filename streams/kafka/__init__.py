"""Kafka plumbing shared by workers and producers: connection settings, topic admin, errors, and
Faust's imports without aiohttp (``lean``)."""
