"""Render a results JSON of ``bench.run`` as Markdown (the tables of bench/RESULTS.md).

    python -m bench.report [bench/out/last.json ...]    # several files: printed one after another
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RATIOS = (
    ("ours1 / limit", "ours1", "limit"),
    ("ours1 / seed", "ours1", "seed"),
    ("ours1 / python", "ours1", "python"),
    ("ours2 / ours1", "ours2", "ours1"),
    ("ours2 / limit", "ours2", "limit"),
    ("seed / limit", "seed", "limit"),
    ("python / limit", "python", "limit"),
    ("limit-traced / limit", "limit-traced", "limit"),
    ("ours1 / limit-traced", "ours1", "limit-traced"),
    ("ours1-untraced / limit", "ours1-untraced", "limit"),
    ("seed / limit-traced", "seed", "limit-traced"),
)


def _f(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rss(values: list[Any]) -> str:
    shown = [v for v in values or [] if v is not None]
    return "/".join(f"{v:.0f}" for v in shown) if shown else "-"


def machine(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    code = report.get("code", {})
    lines = [
        f"- Command: `{report['command']}` (started {report['started_at']}, "
        f"{report.get('elapsed_s', 0) / 60:.1f} min)",
        f"- Machine: {m['nproc']} cores, {m['cpu']}, {m['ram']} RAM, Linux {m['kernel']}; "
        "the Phoenix server, the Kafka broker, the runners and our workers share these cores",
        f"- Versions: Python {m['python']}, Node.js {m['node']}, Phoenix server "
        f"{m.get('phoenix server (running)', m.get('arize-phoenix (server)'))} (SQLite), "
        f"arize-phoenix-client {m['arize-phoenix-client']}, @arizeai/phoenix-client "
        f"{m['@arizeai/phoenix-client (seed)']}, Kafka {m['kafka']} (KRaft, one broker), "
        f"faust-streaming {m['faust-streaming']}, aiokafka {m['aiokafka']}, httpx {m['httpx']}",
        f"- Sizes: {report['sizes']['examples']} examples x {report['sizes']['repetitions']} "
        "repetitions per experiment, pairs 30 % succeeded / 20 % failed / 50 % missing",
    ]
    if code:
        changed = code.get("changed_outside_bench") or []
        lines.append(
            f"- Code: commit {code.get('commit')}"
            + (f", with uncommitted changes in {len(changed)} file(s) outside bench/" if changed else "")
        )
    if report.get("ours_env"):
        lines.append(f"- Extra environment of our workers: `{report['ours_env']}`")
    return lines


def scenario(entry: dict[str, Any]) -> list[str]:
    results = entry["results"]
    sc = entry["scenario"]
    unit = "(runs+evals)/s" if sc["evaluator"] else "runs/s"
    pairs, evals = results[0]["pairs"], results[0]["evaluations"]
    lines = [
        f"#### {entry['name']} ({pairs} runs{f' + {evals} evaluations' if evals else ''})",
        "",
        f"| runner | {unit} | wall s | first run s | peak RSS MB | CPU s client / server / broker "
        "| complete | spans | other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    rate: dict[str, float] = {}
    for r in results:
        rate[r["runner"]] = r.get("rate")
        extra = r.get("extra") or {}
        cpu = extra.get("cpu_s") or {}
        lines.append(
            f"| {r['runner']} | {_f(r.get('rate'))} | {_f(r.get('wall_s'), 2)} | "
            f"{_f(r.get('first_run_s'), 2)} | {_rss(r.get('peak_rss_mb'))} | "
            f"{_f(extra.get('client_cpu_s'))} / {_f(cpu.get('phoenix'))} / {_f(cpu.get('kafka'))} | "
            f"{'yes' if r.get('complete') else 'NO'}"
            f"{' (' + r['error'][:80] + ')' if r.get('error') else ''} | "
            f"{sum((r.get('spans') or {}).values())} | "
            f"{_f(extra.get('foreign_load_before_cores'), 2)} |"
        )
    limits = [v for k, v in rate.items() if k in ("limit", "limit-again") and v]
    if limits:
        rate["limit"] = max(limits)  # the limit is the faster of its two runs
    shown = [
        f"{label} = {rate[a] / rate[b]:.2f}"
        for label, a, b in RATIOS
        if rate.get(a) and rate.get(b)
    ]
    lines += ["", "Ratios (limit = the faster limit run): " + ", ".join(shown) + "." if shown else "", ""]
    return lines


def memory(report: dict[str, Any]) -> list[str]:
    rows = report.get("memory") or []
    if not rows:
        return []
    lines = [
        "| pending pairs | wall s | pairs/s | RSS before MB | RSS sampled max / last MB | "
        "peak RSS (VmHWM) MB | complete |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in rows:
        lines.append(
            f"| {m['pairs']} | {_f(m['wall_s'])} | {_f(m['rate'])} | {_f(m['rss_before_mb'])} | "
            f"{_f(m.get('rss_max_sampled_mb'))} / {_f(m.get('rss_last_sampled_mb'))} | "
            f"{_f(m['peak_rss_mb'])} | {'yes' if m['state'] == 'complete' else m['state']} |"
        )
    return lines + [""]


def startup(report: dict[str, Any]) -> list[str]:
    rows = report.get("startup") or []
    if not rows:
        return []
    lines = []
    for count in sorted({r["workers"] for r in rows}):
        mine = [r for r in rows if r["workers"] == count]
        broken = [r for r in mine if not r["ok"]]
        ready = [r["ready_s"] for r in mine if r["ok"] and r["ready_s"]]
        lines.append(
            f"- {count} worker(s): {len(broken)} of {len(mine)} fresh starts came up with a topic "
            f"unassigned; ready in {_f(min(ready)) if ready else '-'}-"
            f"{_f(max(ready)) if ready else '-'} s when not"
        )
    return lines + [""]


def targets(report: dict[str, Any]) -> list[str]:
    marks = {True: "met", False: "**missed**", None: "not measured"}
    return [
        f"- {marks[t['met']]}: {t['name']}: {t['measured']} (required {t['required']})"
        for t in report.get("targets") or []
    ]


def render(report: dict[str, Any]) -> str:
    lines = machine(report) + [""]
    for entry in report.get("scenarios") or []:
        lines += scenario(entry)
    if report.get("memory"):
        lines += ["#### Memory", ""] + memory(report)
    if report.get("startup"):
        lines += ["#### Fresh worker starts", ""] + startup(report)
    if report.get("targets"):
        lines += ["#### Targets", ""] + targets(report) + [""]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or [Path(__file__).resolve().parent / "out" / "last.json"]
    for path in paths:
        print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
