"""The Faust deployment: the app factory, its topics and tables, the agents that drive the steps."""

from streams.app.factory import Pipeline, Role, create_app

__all__ = ["Pipeline", "Role", "create_app"]
