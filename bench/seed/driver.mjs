// Runner 3, the seed: resumeExperiment of @arizeai/phoenix-client (the npm package, pinned in
// package.json), driven the way a user would call it, with its defaults (tracing on, batch
// span processor). The only addition is an openapi-fetch middleware noting when the first run
// POST answered.
//
//   node bench/seed/driver.mjs --host http://127.0.0.1:6006 --experiment RXhwZXJpbWVudDox \
//       --concurrency 20 --latency 0.2 [--evaluator bench_eval]
//
// Prints one JSON line: wall_s, first_run_s, peak_rss_mb, client_version.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

import { createClient } from "@arizeai/phoenix-client";
import {
  asExperimentEvaluator,
  resumeExperiment,
} from "@arizeai/phoenix-client/experiments";

const { values: args } = parseArgs({
  options: {
    host: { type: "string" },
    experiment: { type: "string" },
    concurrency: { type: "string", default: "5" },
    latency: { type: "string", default: "0" },
    evaluator: { type: "string" },
  },
});
if (!args.host || !args.experiment) {
  console.error("usage: driver.mjs --host URL --experiment ID [--concurrency N] [--latency S] [--evaluator NAME]");
  process.exit(2);
}

const latencyMs = Number(args.latency) * 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The benchmark's task and evaluator, as in bench/taskfns.py.
async function bench_task(example) {
  if (latencyMs > 0) await sleep(latencyMs);
  return { answer: String(example.input?.question ?? "").toUpperCase() };
}

const evaluators = args.evaluator
  ? [
      asExperimentEvaluator({
        name: args.evaluator,
        kind: "CODE",
        evaluate: async ({ output, expected }) => {
          const matched = (output ?? {}).answer === (expected ?? {}).answer;
          return { score: matched ? 1 : 0, label: matched ? "True" : "False" };
        },
      }),
    ]
  : undefined;

const quiet = {
  debug() {},
  info() {},
  warn(m) { console.error(m); },
  error(m) { console.error(m); },
  log() {},
  table() {},
};

const client = createClient({ options: { baseUrl: args.host.replace(/\/$/, "") } });
let start = 0;
let firstRun = null;
client.use({
  onResponse({ request }) {
    if (firstRun === null && request.method === "POST" && new URL(request.url).pathname.endsWith("/runs")) {
      firstRun = (performance.now() - start) / 1000;
    }
  },
});

const pkg = JSON.parse(
  readFileSync(new URL("./node_modules/@arizeai/phoenix-client/package.json", import.meta.url)),
);

const cpu0 = process.cpuUsage();
start = performance.now();
await resumeExperiment({
  client,
  experimentId: args.experiment,
  task: bench_task,
  evaluators,
  concurrency: Number(args.concurrency),
  logger: quiet,
});
const wall = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);

console.log(
  JSON.stringify({
    runner: "seed",
    wall_s: wall,
    first_run_s: firstRun,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
    client_version: pkg.version,
    node_version: process.version,
  }),
);
