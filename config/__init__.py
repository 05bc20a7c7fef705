"""Configuration for phoenix-resume-stream: one settings model, read once at the edge.

Everything configurable lives in :class:`Settings`. Entry points (the CLI, the worker, the
Python API, tests) build it once and pass it down; nothing below ``config/`` reads the
environment.

    >>> from config import Settings
    >>> Settings(phoenix_host="http://127.0.0.1:6006").phoenix_base_url
    'http://127.0.0.1:6006'
"""

from config.limits import LimiterConfig
from config.settings import Settings, TeamConfig, TopicNames, load_settings

__all__ = ["LimiterConfig", "Settings", "TeamConfig", "TopicNames", "load_settings"]
