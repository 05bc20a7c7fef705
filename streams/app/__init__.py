"""The Faust deployment: the app factory, its topics and tables, the agents that drive the steps."""

from streams.kafka.lean import import_faust_types

import_faust_types()  # before Faust's first import: see streams.kafka.lean

from streams.app.factory import Pipeline, Role, create_app  # noqa: E402

__all__ = ["Pipeline", "Role", "create_app"]
