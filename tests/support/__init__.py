"""Helpers shared by the test suites and the benchmarks (not fixtures: plain functions)."""
