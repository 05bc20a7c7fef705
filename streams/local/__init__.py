"""The embedded runner: the pipeline's steps driven in this process, without a broker."""

from streams.local.runner import LocalRun, LocalRunError, run_local

__all__ = ["LocalRun", "LocalRunError", "run_local"]
