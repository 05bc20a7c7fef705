"""A lean one-shot process: the embedded path loads no Kafka library (importing the CLI and the
Python API, and a whole embedded run, leave Faust, aiokafka, aiohttp and mode out: they were most
of its start and exit time), and a command's process freezes its heap for the collector. Each
check runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
KAFKA_LIBRARIES = ("faust", "aiokafka", "aiohttp", "mode", "kafka")


def loaded_after(code: str, libraries: tuple[str, ...] = KAFKA_LIBRARIES) -> list[str]:
    """The ``libraries`` (default: Kafka's) in ``sys.modules`` after ``code`` ran in a fresh
    interpreter."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}}
                                & set({list(libraries)!r}))))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for name in [k for k in env if k.startswith(("KAFKA_", "RESUME_"))]:
        env.pop(name)
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["producers.cli", "producers.api", "producers.runner"])
def test_importing_the_one_shot_entry_points_loads_no_kafka_library(module: str) -> None:
    assert loaded_after(f"import {module}") == []


EMBEDDED_RUN = """
        import asyncio
        from config import Settings
        from producers.runner import run_request
        from streams.evaluators import EvaluatorRegistry
        from streams.events import ResumeRequest
        from streams.registry import TaskRegistry
        from streams.teams import TeamDirectory
        from tests.unit.fake_phoenix import FakePhoenix, experiment

        phoenix = FakePhoenix(experiment(examples=6, repetitions=2))
        tasks, evaluators = TaskRegistry(), EvaluatorRegistry()
        tasks.register("answer", lambda input: {"n": input["n"]})
        evaluators.register("has-n", lambda output: "n" in output)
        import streams.local.runner as local
        settings = Settings(tracing_enabled=False, runner="local")

        async def main():
            original = local.run_local
            async def with_fake(*args, **kwargs):
                return await original(*args, teams=TeamDirectory.single(phoenix.client()), **kwargs)
            import producers.runner as runner
            runner.run_local = with_fake
            request = ResumeRequest(experiment_id=next(iter(phoenix.experiments)), task="answer",
                                    evaluators=("has-n",))
            summary = await run_request(settings, request, tasks=tasks, evaluators=evaluators)
            assert summary["succeeded"] == 12, summary

        asyncio.run(main())
    """


def test_a_whole_embedded_run_loads_no_kafka_library() -> None:
    assert loaded_after(EMBEDDED_RUN) == []


def test_a_whole_embedded_run_loads_no_prometheus_client() -> None:
    """Nobody scrapes a one-shot run: its counters are the summary's and the JSON snapshot's."""
    assert loaded_after(EMBEDDED_RUN, ("prometheus_client",)) == []


def test_the_kafka_codec_is_faust_s_and_wraps_the_pure_one() -> None:
    """The Faust adapter is still a Faust codec (what the topics are declared with)."""
    assert loaded_after("from streams.wire import ModelCodec") == []
    assert "faust" in loaded_after("import streams.codec")


def test_a_command_s_process_freezes_its_heap_and_a_python_caller_s_is_left_alone(
    tmp_path: Path,
) -> None:
    """gc.freeze keeps the collector off what the imports built, only in a process the CLI
    owns, which it then ends without the interpreter's teardown (its exit functions run):
    called with argv from Python it changes nothing and returns."""
    code = f"""
        import atexit, gc, sys
        import producers.cli as cli
        cli.main(["schemas", "--out", {str(tmp_path / "a")!r}])
        print("caller", gc.get_freeze_count(), file=sys.stderr)
        atexit.register(lambda: print("program", gc.get_freeze_count(), file=sys.stderr))
        sys.argv = ["phoenix-resume", "schemas", "--out", {str(tmp_path / "b")!r}]
        cli.main()
        print("not reached: the command's process ends in main()", file=sys.stderr)
        sys.exit(3)
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    counts = dict(line.split() for line in done.stderr.splitlines() if line.startswith(("caller", "program")))
    assert int(counts["caller"]) == 0 < int(counts["program"])
    assert "not reached" not in done.stderr


def test_the_cli_leaves_httpx_s_command_line_unloaded_and_the_collector_as_it_found_it() -> None:
    """httpx's own command line (rich, click, pygments) is not loaded by ours; the collector,
    off while the imports run, is on again after them (and stays off if it was off)."""
    probe = textwrap.dedent("""
        import gc, json, sys
        import producers.cli
        on = gc.isenabled()
        print(json.dumps([sorted({n.split(".")[0] for n in sys.modules}
                                 & {"rich", "click", "pygments"}), on]))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for prefix in ("", "import gc; gc.disable()\n"):
        done = subprocess.run([sys.executable, "-c", prefix + probe], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) == [[], prefix == ""]
