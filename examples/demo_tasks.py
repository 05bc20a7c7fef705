"""Demo tasks: what a team registers on its workers (``RESUME_TASK_MODULES=examples.demo_tasks``).

    $ phoenix-resume worker --task-module examples.demo_tasks
    $ phoenix-resume request <EXPERIMENT_ID> --task capital-city --wait
"""

from __future__ import annotations

import asyncio

from streams.registry import task

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Norway": "Oslo",
    "India": "New Delhi",
}


@task("capital-city")
async def capital_city(input: dict) -> dict:
    """Pretend to be a model: a short await, then an answer, or an error for unknown countries."""
    await asyncio.sleep(0.05)
    country = input["country"]
    if country not in CAPITALS:
        raise LookupError(f"no capital known for {country!r}")
    return {"answer": CAPITALS[country]}
