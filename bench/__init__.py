"""Benchmarks: this project against the bare-httpx limit, Phoenix's Python client and the seed.

Run everything with ``make bench`` (``python -m bench.run``); ``python -m bench.run --help`` lists
the pieces. Figures are printed and written to ``bench/out/``; ``bench/RESULTS.md`` records a run.
"""
