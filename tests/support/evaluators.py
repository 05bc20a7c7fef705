"""Evaluators for tests, importable as MODULE:FUNC by the CLI."""

from __future__ import annotations


def exact(output: dict, expected: dict) -> bool:
    return output.get("answer") == expected.get("answer")


def answer_length(output):  # a single unnamed parameter gets the output
    return float(len(str(output.get("answer", ""))))
