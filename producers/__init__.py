"""What publishes to Kafka from outside a stream: the request publisher, the one-shot runner,
the CLI and the Python API (:func:`producers.api.resume_experiment`).

The pager itself is a Faust agent (``streams.coordinator``): it reads Phoenix and publishes
work items from inside the stream, where its progress is durable.
"""
