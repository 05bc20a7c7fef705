"""Kafka plumbing shared by workers and producers: connection settings, topic admin, errors."""
