"""Registers the benchmark's task and evaluator on our workers (``--task-module bench.tasks``)."""

from __future__ import annotations

from bench.taskfns import EVALUATOR_NAME, TASK_NAME, bench_eval, bench_task
from streams.evaluators import evaluator
from streams.registry import task

task(TASK_NAME)(bench_task)
evaluator(EVALUATOR_NAME)(bench_eval)
