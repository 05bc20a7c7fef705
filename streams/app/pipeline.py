"""A configured Faust app with its topics, and the shared context and steps its agents drive."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from config import Settings
from streams.app.topics import Topics
from streams.context import Context, Tables
from streams.metrics import Metrics
from streams.phoenix import PhoenixClient
from streams.steps import Steps


@dataclass(frozen=True)
class Pipeline:
    """What :func:`streams.app.create_app` returns: the app and everything its agents share."""

    settings: Settings
    app: faust.App
    topics: Topics
    context: Context
    steps: Steps

    @property
    def tables(self) -> Tables:
        return self.context.tables

    @property
    def metrics(self) -> Metrics:
        return self.context.metrics

    @property
    def phoenix(self) -> PhoenixClient:
        """The default team's Phoenix client."""
        return self.context.teams.phoenix(None)
