// The status page: fetch status.json every second and redraw both tables. No framework.
"use strict";

const FINAL = new Set(["complete", "aborted", "failed", "rejected"]);
const COLUMNS = ["Request", "State", "Pairs done / total", "Succeeded", "Failed",
                 "Other", "Evaluations", "Phoenix"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function num(field, value, cls) {
  return el("span", {"data-field": field, class: cls}, value ?? 0);
}

function count(outcome, value, cls) {  // one evaluator's count: apart from the run counts
  return el("span", {"data-eval": outcome, class: cls}, value ?? 0);
}

function evaluations(request) {
  const cell = el("td", {class: "evals num"});
  const names = Object.keys(request.evaluations || {}).sort();
  if (!names.length) cell.append(el("span", {class: "muted"}, "none"));
  for (const name of names) {
    const counts = request.evaluations[name];
    const line = el("div", {"data-evaluator": name}, name + ": ",
                    count("succeeded", counts.succeeded), " ok");
    if (counts.failed) line.append(" · ", count("failed", counts.failed, "failed"), " failed");
    cell.append(line);
  }
  return cell;
}

function links(request) {
  const cell = el("td");
  if (request.experiment_url) {
    cell.append(el("a", {href: request.experiment_url, "data-link": "experiment"}, "experiment"));
  }
  if (request.dataset_experiments_url) {
    if (cell.childNodes.length) cell.append(" · ");
    cell.append(el("a", {href: request.dataset_experiments_url, "data-link": "dataset"},
                   "dataset"));
  }
  return cell;
}

function row(request) {
  const done = request.done ?? 0, total = request.total ?? 0;
  const share = total ? Math.min(100, Math.round(100 * done / total)) : 0;
  const other = (request.already_done || 0) + (request.skipped || 0) + (request.dead_lettered || 0);
  const state = el("td", {},
    el("span", {class: "state state-" + request.state, "data-field": "state"}, request.state));
  if (request.cause) state.append(el("div", {class: "muted"}, request.cause));
  return el("tr", {"data-request-id": request.request_id, "data-experiment-id": request.experiment_id},
    el("td", {},
      el("div", {class: "id"}, request.request_id),
      el("div", {class: "muted"}, (request.task || "evaluations only") +
         (request.team ? " · team " + request.team : "") + " · " + request.source),
      el("div", {class: "id muted"}, request.experiment_id)),
    state,
    el("td", {class: "num"}, num("done", done), " / ", num("total", total),
       el("div", {class: "bar bar-" + request.state}, el("span", {style: "width:" + share + "%"}))),
    el("td", {class: "num"}, num("succeeded", request.succeeded)),
    el("td", {class: "num"}, num("failed", request.failed, request.failed ? "failed" : "")),
    el("td", {class: "num", title: "already done + skipped + dead-lettered"}, num("other", other)),
    evaluations(request),
    links(request));
}

function fill(table, requests) {
  table.tHead.replaceChildren(el("tr", {}, ...COLUMNS.map((c) => el("th", {}, c))));
  const body = requests.length ? requests.map(row)
    : [el("tr", {}, el("td", {colspan: COLUMNS.length, class: "muted"}, "none"))];
  table.tBodies[0].replaceChildren(...body);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const response = await fetch("status.json", {cache: "no-store"});
    if (!response.ok) throw new Error("status.json answered " + response.status);
    const report = await response.json();
    const active = report.requests.filter((r) => !FINAL.has(r.state));
    const recent = report.requests.filter((r) => FINAL.has(r.state));
    fill(document.getElementById("active"), active);
    fill(document.getElementById("recent"), recent);
    document.getElementById("active-count").textContent = active.length;
    document.getElementById("recent-count").textContent = recent.length;
    const worker = report.worker;
    document.getElementById("app-id").textContent = worker.app_id;
    document.getElementById("role").textContent = worker.role;
    document.getElementById("status-topic").textContent = worker.status_topic;
    document.getElementById("worker-runs").textContent =
      Object.values(worker.runs).reduce((a, b) => a + b, 0);
    document.getElementById("worker-in-flight").textContent = worker.in_flight;
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    error.style.display = "none";
  } catch (exc) {
    error.textContent = "This worker does not answer: " + exc.message;
    error.style.display = "block";
  }
}

refresh();
setInterval(refresh, 1000);
