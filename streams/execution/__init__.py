"""Running user code: tasks and evaluators, their timeouts, spans and idempotent records in Phoenix."""
