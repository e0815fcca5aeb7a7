// jobhandle dashboard: live updates over SSE, actions with confirmation, themes, shortcuts.
// Every value from the server is written with textContent or as an attribute: never parsed as markup.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const PAGE = document.body.dataset.page;
const FALLBACK_MS = 30000;
const RECONNECT_MS = 3000;
const OVERVIEW_MIN_MS = 1000;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const CANCELLABLE = new Set(["waiting", "scheduled", "pending", "running", "retrying"]);
const RESTARTABLE = new Set(["failed", "cancelled"]);
const loadedAt = Date.now();
const watched = new Set();          // jobs whose end raises a notice: the one opened, the ones acted on
let newFailures = 0;
const baseTitle = document.title;

// -- small helpers -------------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function fmtDuration(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h} h ${m % 60} m` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

function relative(date) {
  const s = (Date.now() - date.getTime()) / 1000;
  if (Math.abs(s) < 5) return "just now";
  const a = Math.abs(s);
  const text = a < 60 ? `${Math.round(a)} s` : a < 3600 ? `${Math.round(a / 60)} min`
    : a < 172800 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

function renderTime(node) {
  const iso = node.getAttribute("datetime");
  if (!iso) { node.textContent = ""; return; }
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return;
  node.textContent = relative(d);
  node.title = d.toLocaleString();
}

function renderTimes(root) { (root || document).querySelectorAll("time[datetime]").forEach(renderTime); }

async function call(method, url, body) {
  const options = { method, headers: { "X-CSRF-Token": CSRF, "Accept": "application/json" }, credentials: "same-origin" };
  if (body !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || `${response.status} ${response.statusText}`);
  return data;
}

function toast(text, kind, href) {
  const box = el("div", { class: `toast ${kind || ""}`, role: "status" });
  box.append(href ? el("a", { href }, text) : text);
  document.getElementById("toasts").append(box);
  setTimeout(() => box.remove(), 8000);
}

function confirmDialog(title, text, yes) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yes;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
}

// -- updating what is on the page from a job -------------------------------------------------------------------

function setText(scope, field, text) {
  // Only what changed is written: an unchanged field is left alone (no layout work, no mutation).
  scope.querySelectorAll(`[data-f="${field}"]`).forEach((n) => { if (n.textContent !== String(text)) n.textContent = text; });
}

function setTime(scope, field, iso) {
  scope.querySelectorAll(`time[data-f="${field}"]`).forEach((n) => {
    if (iso) n.setAttribute("datetime", iso); else n.removeAttribute("datetime");
    renderTime(n);
  });
}

// A job's state can reach the page twice, from the stream and from a request's answer, in either order: an
// older state (a lower seq, the job's change number) never overwrites a newer one.
const shownSeq = new Map();
function stale(job) {
  if (job.seq < (shownSeq.get(job.job_id) || 0)) return true;
  shownSeq.set(job.job_id, job.seq);
  return false;
}

function updateJob(scope, job) {
  if (job.seq < (shownSeq.get(job.job_id) || 0)) return;
  scope.dataset.status = job.status;
  scope.querySelectorAll('[data-f="status"]').forEach((n) => { n.textContent = job.status; n.className = `status s-${job.status}`; });
  scope.querySelectorAll('[data-f="progress"]').forEach((n) => {
    n.querySelector("progress").value = job.progress;
    n.querySelector(".pct").textContent = `${Math.round(job.progress * 100)}%`;
  });
  for (const f of ["created_at", "started_at", "completed_at", "run_at"]) setTime(scope, f, job[f]);
  const m = job.metrics || {};
  setText(scope, "execution_time", fmtDuration(m.execution_time_seconds));
  setText(scope, "items", m.items_processed ?? "");
  scope.querySelectorAll('td[data-f="error"]').forEach((n) => {
    n.textContent = (job.error || job.progress_message || "").slice(0, 120);
    n.title = job.error || "";
  });
  scope.querySelectorAll('[data-action="cancel"]').forEach((b) => { b.hidden = !CANCELLABLE.has(job.status); });
  scope.querySelectorAll('[data-action="restart"]').forEach((b) => { b.hidden = !RESTARTABLE.has(job.status); });
}

function updateDetail(job) {
  if (stale(job)) return;
  const head = document.querySelector(".job-head");
  updateJob(head, job);
  updateJob(document.querySelector("main"), job);
  setText(document, "progress_message", job.progress_message || "");
  setText(document, "attempts", `${job.attempts} of ${job.max_retries + 1}`);
  setText(document, "worker_id", job.worker_id || "");
  setText(document, "error_text", job.error || "");
  setText(document, "result", job.result === null || job.result === undefined ? "" : JSON.stringify(job.result, null, 2));
  const m = job.metrics || {};
  setText(document, "cpu", fmtDuration(m.cpu_seconds));
  setText(document, "memory", m.peak_memory_mb == null ? "" : `${m.peak_memory_mb.toFixed(1)} MB`);
  setText(document, "items", m.items_processed == null ? "" : `${m.items_processed}${m.total_items ? ` of ${m.total_items}` : ""}`);
  const started = job.started_at ? new Date(job.started_at) : null;
  const ended = job.completed_at ? new Date(job.completed_at) : new Date();
  setText(document, "waited", started ? fmtDuration((started - new Date(job.created_at)) / 1000) : "");
  setText(document, "ran", started ? fmtDuration(Math.max(0, (ended - started) / 1000)) : "");
  const timeline = document.querySelector('[data-f="progress_history"]');
  if (timeline) {
    timeline.replaceChildren(...(job.progress_history || []).map((p) => el("li", {},
      el("time", { datetime: p.at || "" }, p.at || ""), " ",
      el("span", { class: "pct" }, `${Math.round((p.progress || 0) * 100)}%`), " ",
      el("span", { class: "msg" }, p.message || ""))));
    renderTimes(timeline);
  }
  const attempts = document.querySelector('[data-f="error_history"]');
  if (attempts) {
    attempts.replaceChildren(...(job.error_history || []).map((e) => el("li", {},
      `attempt ${e.attempt ?? "?"}: `, el("strong", {}, e.error_type || "error"), " ",
      el("time", { datetime: e.at || "" }, e.at || ""), e.worker_id ? ` on ${e.worker_id}` : "",
      el("pre", { class: "error" }, e.traceback || e.error || ""))));
    renderTimes(attempts);
  }
}

// -- the jobs list ---------------------------------------------------------------------------------------------

function matchesFilter(job) {
  const d = document.body.dataset;
  if (d.fStatus && !d.fStatus.split(",").includes(job.status)) return false;
  if (d.fJobType && d.fJobType !== job.job_type) return false;
  if (d.fQueue && d.fQueue !== job.queue) return false;
  if (d.fUser && d.fUser !== job.user_id) return false;
  if (d.fSearch && !job.job_id.startsWith(d.fSearch.toLowerCase()) && !job.user_id.includes(d.fSearch)) return false;
  return true;
}

const announced = new Set();
function onListChange(job) {
  if (document.body.dataset.watch !== job.job_id && stale(job)) return;  // (a job page checked it already)
  const row = document.querySelector(`#jobs tr[data-job="${job.job_id}"], #recent-failures tr[data-job="${job.job_id}"]`);
  if (row) {
    const was = row.dataset.status;
    updateJob(row, job);
    if (was !== job.status) { row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash"); }
    return;
  }
  const banner = document.getElementById("new-jobs");
  if (!banner || document.body.dataset.firstPage !== "yes" || announced.has(job.job_id)) return;
  if (new Date(job.created_at).getTime() < loadedAt - 1000 || !matchesFilter(job)) return;
  announced.add(job.job_id);
  // Newest first and the list scrolled to its top: the job takes its place at once. Otherwise a notice, so
  // nothing moves under the reader.
  if (document.body.dataset.sort === "-created_at" && window.scrollY === 0 && insertRow(job)) return;
  banner.querySelector(".n").textContent = String(announced.size - inserted);
  banner.hidden = false;
}

let inserted = 0;
function insertRow(job) {
  const template = document.getElementById("row-template");
  const body = document.querySelector("#jobs tbody");
  if (!template || !body) return false;
  const row = template.content.firstElementChild.cloneNode(true);
  row.dataset.job = job.job_id;
  row.dataset.created = job.created_at;
  const link = row.querySelector("td.id a");
  link.setAttribute("href", `/jobs/${encodeURIComponent(job.job_id)}`);
  link.title = job.job_id;
  link.querySelector("code").textContent = job.job_id.slice(0, 8);
  row.querySelector('[data-f="job_type"]').textContent = job.job_type;
  row.querySelector('[data-f="user_id"]').textContent = job.user_id;
  row.querySelectorAll("[data-job]").forEach((n) => { n.dataset.job = job.job_id; });
  const box = row.querySelector("input.select");
  if (box) { box.value = job.job_id; box.setAttribute("aria-label", `select job ${job.job_id}`); }
  updateJob(row, job);
  body.querySelector("tr.empty")?.remove();
  body.prepend(row);
  const rows = body.querySelectorAll("tr[data-job]");
  if (rows.length > Number(document.body.dataset.limit || 50)) rows[rows.length - 1].remove();
  row.classList.add("flash");
  inserted += 1;
  return true;
}

function selectedIds() {
  return [...document.querySelectorAll("#jobs input.select:checked")].map((c) => c.value);
}

function refreshSelection() {
  const n = selectedIds().length;
  const count = document.getElementById("selected-count");
  if (count) count.textContent = String(n);
  document.querySelectorAll('[data-scope="selected"]').forEach((b) => { b.disabled = n === 0; });
  document.querySelectorAll("#jobs tr[data-job]").forEach((r) => r.classList.toggle("selected", !!r.querySelector("input.select:checked")));
}

// -- actions ---------------------------------------------------------------------------------------------------

const WHAT = {
  cancel: "A pending or scheduled job will not run; a running job's handler is told to stop and the job ends cancelled. It can be restarted later.",
  restart: "The job runs again from the start with the same parameters and id: status pending, attempts reset to 0.",
};

async function actOnOne(button) {
  const id = button.dataset.job;
  const action = button.dataset.action;
  const scope = button.closest("[data-status]");
  const status = scope ? scope.dataset.status : "";
  const ok = await confirmDialog(`${action === "cancel" ? "Cancel" : "Restart"} job ${id.slice(0, 8)}?`,
    `Job ${id} is ${status}. ${WHAT[action]}`, action === "cancel" ? "Cancel the job" : "Restart the job");
  if (!ok) return;
  watched.add(id);  // before the call: the job may end before its answer arrives
  try {
    const job = await call("POST", `/ui/jobs/${encodeURIComponent(id)}/${action}`);
    document.querySelectorAll(`[data-job="${job.job_id}"]`).forEach((n) => { if (n.dataset.status !== undefined) updateJob(n, job); });
    toast(`job ${id.slice(0, 8)}: ${job.status}`, job.status);
  } catch (e) {
    toast(`could not ${action} job ${id.slice(0, 8)}: ${e.message}`, "failed");
  }
}

async function bulk(button) {
  const action = button.dataset.bulk;
  const scope = button.dataset.scope;
  const body = { action };
  if (scope === "selected") body.job_ids = selectedIds(); else body.filter = document.body.dataset.filter || "";
  try {
    const count = await call("POST", "/ui/jobs/bulk", { ...body, dry_run: true });
    if (count.matched === 0) { toast(`no job here can be ${action === "cancel" ? "cancelled" : "restarted"}`); return; }
    const described = scope === "selected" ? `the ${count.matched} selected jobs`
      : `${count.matched}${count.more ? "+" : ""} jobs matching this filter (${body.filter || "every job"}) that can be ${action === "cancel" ? "cancelled" : "restarted"}${count.more ? `; the first ${count.limit} now, run it again for the rest` : ""}`;
    const ok = await confirmDialog(`${action === "cancel" ? "Cancel" : "Restart"} ${count.matched}${count.more ? "+" : ""} jobs?`,
      `This will ${action} ${described}. ${WHAT[action]}`, `${action === "cancel" ? "Cancel" : "Restart"} ${count.matched} jobs`);
    if (!ok) return;
    const result = await call("POST", "/ui/jobs/bulk", body);
    toast(`${result.done.length} jobs ${action === "cancel" ? "cancelled" : "restarted"}${result.failed.length ? `, ${result.failed.length} could not be` : ""}`,
      result.failed.length ? "failed" : "completed");
  } catch (e) {
    toast(`bulk ${action} failed: ${e.message}`, "failed");
  }
}

document.addEventListener("click", (event) => {
  const one = event.target.closest("button[data-action]");
  if (one) { actOnOne(one); return; }
  const many = event.target.closest("button[data-bulk]");
  if (many) { bulk(many); return; }
  const group = event.target.closest("button[data-restart-group]");
  if (group) { restartGroup(group); return; }
  const schedule = event.target.closest("button[data-schedule-action]");
  if (schedule) changeSchedule(schedule);
});

document.addEventListener("change", (event) => {
  if (event.target.id === "select-page") {
    document.querySelectorAll("#jobs input.select").forEach((c) => { c.checked = event.target.checked; });
  }
  if (event.target.matches("#jobs input.select, #select-page")) refreshSelection();
});

// -- cleanup of finished jobs from the overview: the count first, then the removal --------------------------------

async function cleanUp(form) {
  const days = Number(form.elements.days.value);
  try {
    const count = await call("POST", "/ui/cleanup", { days, dry_run: true });
    if (count.candidates === 0) { toast(`no finished job was created more than ${days} days ago`); return; }
    const ok = await confirmDialog(`Remove finished jobs older than ${days} days?`,
      `${count.candidates} completed, failed or cancelled jobs were created more than ${days} days ago: those of them that finished more than ${days} days ago will be removed for good, with their results and errors (the analytics keep their figures). Running and waiting jobs are not touched.`,
      `Remove them`);
    if (!ok) return;
    const result = await call("POST", "/ui/cleanup", { days });
    toast(`${result.removed} finished jobs removed`, "completed");
    refreshOverview();
  } catch (e) {
    toast(`cleanup failed: ${e.message}`, "failed");
  }
}

document.addEventListener("submit", (event) => {
  if (event.target.id !== "cleanup") return;
  event.preventDefault();
  cleanUp(event.target);
});

// -- the submit form: submit, then watch the job in place until it ends ------------------------------------------

function parametersOf(text) {
  let value;
  try { value = JSON.parse(text.trim() || "{}"); } catch (e) { return [null, `not JSON: ${e.message}`]; }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return [null, 'parameters must be a JSON object, e.g. {"pages": 3}'];
  }
  return [value, null];
}

function submitBody(form) {
  const f = form.elements;
  const [parameters] = parametersOf(f.parameters.value);
  const body = { job_type: f.job_type.value.trim(), parameters, priority: f.priority.value, queue: f.queue.value.trim() };
  if (f.user_id && f.user_id.value.trim()) body.user_id = f.user_id.value.trim();
  const when = form.querySelector('input[name="when"]:checked').value;
  if (when === "delay") body.delay_seconds = Number(f.delay_seconds.value);
  if (when === "at" && f.scheduled_time.value) body.scheduled_time = f.scheduled_time.value;
  const deps = f.depends_on.value.split(/[\s,]+/).filter(Boolean);
  if (deps.length) body.depends_on = deps.map((job_id) => ({ job_id, condition: f.condition.value }));
  if (f.max_retries.value !== "") body.max_retries = Number(f.max_retries.value);
  if (f.timeout_seconds.value !== "") body.timeout_seconds = Number(f.timeout_seconds.value);
  return body;
}

function setUpSubmitForm(form) {
  const params = form.elements.parameters;
  const problem = document.getElementById("parameters-error");
  const button = document.getElementById("submit-button");
  const check = () => {
    const [, error] = parametersOf(params.value);
    problem.textContent = error || "";
    params.setAttribute("aria-invalid", error ? "true" : "false");
    button.disabled = !!error;
    return !error;
  };
  params.addEventListener("input", check);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!check()) return;
    const error = document.getElementById("submit-error");
    error.textContent = "";
    button.disabled = true;
    try {
      const job = await call("POST", "/ui/jobs", submitBody(form));
      watch(job);
    } catch (e) {
      error.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
}

function watch(job) {
  const monitor = document.getElementById("monitor");
  monitor.hidden = false;
  document.body.dataset.watch = job.job_id;
  watched.add(job.job_id);
  connect();  // the stream now carries this job's changes too
  document.getElementById("monitor-id").textContent = job.job_id;
  document.getElementById("monitor-link").setAttribute("href", `/jobs/${encodeURIComponent(job.job_id)}`);
  monitor.querySelector('[data-f="job_type"]').textContent = job.job_type;
  updateDetail(job);
}

// -- failures and schedules --------------------------------------------------------------------------------------

async function restartGroup(button) {
  const group = button.closest("tr");
  const d = group.dataset;
  const ok = await confirmDialog(`Restart ${d.count} failed jobs?`,
    `Every failed ${d.jobType} job whose error is ${d.errorType || "?"}: ${d.message} runs again from the start (same ids and parameters, attempts reset).`,
    `Restart ${d.count} jobs`);
  if (!ok) return;
  try {
    const result = await call("POST", "/ui/failures/restart", { job_type: d.jobType, error_type: d.errorType, message: d.message });
    result.done.forEach((id) => watched.add(id));
    toast(`${result.done.length} jobs restarted${result.failed.length ? `, ${result.failed.length} could not be` : ""}`, "completed");
    group.remove();
  } catch (e) {
    toast(`restart failed: ${e.message}`, "failed");
  }
}

const SCHEDULE_WHAT = {
  pause: "It stops firing; the job of its coming fire is cancelled. Resume it to fire again.",
  resume: "It fires again, from its first fire time after now.",
  delete: "The schedule is removed and the job of its coming fire cancelled; the jobs it ran are kept.",
};

async function changeSchedule(button) {
  const row = button.closest("tr");
  const action = button.dataset.scheduleAction;
  const ok = await confirmDialog(`${action[0].toUpperCase()}${action.slice(1)} schedule ${row.dataset.name}?`,
    SCHEDULE_WHAT[action], `${action[0].toUpperCase()}${action.slice(1)} it`);
  if (!ok) return;
  try {
    await call("POST", `/ui/schedules/${encodeURIComponent(row.dataset.schedule)}/${action}`);
    location.reload();
  } catch (e) {
    toast(`could not ${action} the schedule: ${e.message}`, "failed");
  }
}

function setUpScheduleForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const [parameters, problem] = parametersOf(f.parameters.value);
    document.getElementById("parameters-error").textContent = problem || "";
    if (problem) return;
    const body = { job_type: f.job_type.value.trim(), cron_expression: f.cron_expression.value.trim(), parameters,
      timezone: f.timezone.value.trim() || "UTC", queue: f.queue.value.trim(), priority: f.priority.value };
    if (f.name.value.trim()) body.name = f.name.value.trim();
    try {
      await call("POST", "/ui/schedules", body);
      location.reload();
    } catch (e) {
      document.getElementById("submit-error").textContent = e.message;
    }
  });
}

// -- the overview ----------------------------------------------------------------------------------------------

let overviewTimer = null;
let overviewAt = 0;
function scheduleOverview() {
  if (PAGE !== "overview" || overviewTimer) return;
  const wait = Math.max(0, overviewAt + OVERVIEW_MIN_MS - Date.now());
  overviewTimer = setTimeout(refreshOverview, wait);
}

async function refreshOverview() {
  overviewTimer = null;
  overviewAt = Date.now();
  let o;
  try { o = await call("GET", "/ui/overview"); } catch (e) { return; }
  for (const [key, value] of Object.entries(o.stats)) {
    document.querySelectorAll(`[data-stat="${key}"]`).forEach((n) => { n.textContent = String(value); });
  }
  const cleanup = document.querySelector('[data-stat-time="last_cleanup"]');
  if (cleanup && o.stats.last_cleanup) { cleanup.setAttribute("datetime", o.stats.last_cleanup); renderTime(cleanup); }
  document.getElementById("alerts").replaceChildren(...o.alerts.map((a) => el("p", { class: `alert ${a.level}` }, a.text)));
  const queues = document.querySelector("#queues tbody");
  if (queues) {
    queues.replaceChildren(...(o.queues.length ? o.queues.map((q) => el("tr", { "data-queue": q.name },
      el("td", {}, el("a", { href: `/jobs?queue=${encodeURIComponent(q.name)}` }, q.name)),
      el("td", { class: "num" }, q.pending), el("td", { class: "num" }, q.running), el("td", { class: "num" }, q.scheduled),
      el("td", { class: "num" }, q.waiting), el("td", { class: "num" }, q.failed),
      el("td", { class: "num" }, fmtDuration(q.oldest_wait_seconds))))
      : [el("tr", { class: "empty" }, el("td", { colspan: "7" }, "No jobs yet."))]));
  }
}

// -- notifications ---------------------------------------------------------------------------------------------

function notify(job) {
  if (!TERMINAL.has(job.status)) return;
  const mine = watched.has(job.job_id) || document.body.dataset.watch === job.job_id;
  if (job.status === "failed" && (mine || PAGE === "overview")) {
    toast(`job ${job.job_id.slice(0, 8)} (${job.job_type}) failed: ${(job.error || "").slice(0, 100)}`, "failed", `/jobs/${job.job_id}`);
    if (document.hidden) { newFailures += 1; document.title = `(${newFailures}) ${baseTitle}`; }
  } else if (mine) {
    toast(`job ${job.job_id.slice(0, 8)} (${job.job_type}) ${job.status}`, job.status, `/jobs/${job.job_id}`);
  }
  if (mine) watched.delete(job.job_id);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) { newFailures = 0; document.title = baseTitle; }
});

// -- the event stream ------------------------------------------------------------------------------------------

const live = document.getElementById("live");
let fallback = null;

function setLive(state, text) {
  live.dataset.state = state;
  live.textContent = text;
  const notice = document.getElementById("fallback");
  if (notice) notice.hidden = state !== "down";
}

function onJob(event) {
  const job = JSON.parse(event.data);
  if (document.body.dataset.watch === job.job_id) updateDetail(job);
  onListChange(job);
  notify(job);
}

// The stream carries only what this page shows (see web/live.py): the jobs on it, new jobs where the page
// takes them in, failures where they raise a notice; "changed" at most once a second for the overview.
function streamUrl() {
  const ids = new Set([...document.querySelectorAll("[data-job]")].map((n) => n.dataset.job));
  for (const id of watched) ids.add(id);
  ids.delete("00000000-0000-4000-8000-000000000000");  // the row template's placeholder
  const params = new URLSearchParams();
  if (ids.size) params.set("watch", [...ids].slice(0, 1000).join(","));
  if (PAGE === "jobs" && document.body.dataset.firstPage === "yes") {
    params.set("new", "1");
    params.set("since", document.body.dataset.rendered);  // jobs created after the server rendered the page
  }
  if (PAGE === "overview") params.set("failures", "1");
  return `/ui/events?${params}`;
}

let source = null;
function connect() {
  if (PAGE === "login" || !window.EventSource) return;
  if (source) source.close();
  source = new EventSource(streamUrl());
  source.addEventListener("open", async () => {
    setLive("open", "live");
    if (fallback) { clearInterval(fallback); fallback = null; scheduleOverview(); }
    const id = document.body.dataset.watch;
    if (PAGE === "submit" && id) {  // what happened to the job before this stream carried it
      try { updateDetail(await call("GET", `/ui/jobs/${encodeURIComponent(id)}`)); } catch (e) { /* next event */ }
    }
  });
  source.addEventListener("job_update", onJob);
  source.addEventListener("job_complete", onJob);
  source.addEventListener("changed", () => {
    scheduleOverview();
    document.dispatchEvent(new CustomEvent("jobhandle:changed"));  // other page scripts (analytics.js) listen
  });
  source.addEventListener("resync", scheduleOverview);
  source.addEventListener("error", () => {
    setLive("down", "reconnecting (refresh every 30 s)");
    if (!fallback) fallback = setInterval(() => { if (PAGE === "overview") refreshOverview(); }, FALLBACK_MS);
    // Reconnect ourselves, with what the page shows now (EventSource would reuse the first URL).
    source.close();
    setTimeout(connect, RECONNECT_MS);
  });
}

// -- theme and keyboard ----------------------------------------------------------------------------------------

const THEMES = ["auto", "light", "dark"];
function cycleTheme() {
  const root = document.documentElement;
  const next = THEMES[(THEMES.indexOf(root.dataset.theme) + 1) % THEMES.length];
  root.dataset.theme = next;
  try { localStorage.setItem("jh-theme", next); } catch (e) { /* storage blocked */ }
  document.getElementById("theme").title = `theme: ${next} (click to switch)`;
}
document.getElementById("theme").addEventListener("click", cycleTheme);
document.getElementById("help-open").addEventListener("click", () => document.getElementById("help").showModal());

let pendingG = false;
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target.matches("input, textarea, select") || document.querySelector("dialog[open]")) return;
  if (pendingG) {
    pendingG = false;
    const to = { o: "/", j: "/jobs", f: "/failures", a: "/analytics", w: "/workers", s: "/schedules" }[event.key];
    if (to) { event.preventDefault(); location.href = to; }
    return;
  }
  if (event.key === "/") {
    event.preventDefault();
    const search = document.getElementById("search");
    if (search) search.focus(); else location.href = "/jobs#search";
  } else if (event.key === "?") {
    event.preventDefault();
    document.getElementById("help").showModal();
  } else if (event.key === "t") {
    cycleTheme();
  } else if (event.key === "n") {
    location.href = "/submit";
  } else if (event.key === "g") {
    pendingG = true;
    setTimeout(() => { pendingG = false; }, 1500);
  }
});

if (location.hash === "#search") document.getElementById("search")?.focus();
if (document.body.dataset.watch) watched.add(document.body.dataset.watch);
const submitForm = document.getElementById("submit-form");
if (submitForm) setUpSubmitForm(submitForm);
const scheduleForm = document.getElementById("schedule-form");
if (scheduleForm) setUpScheduleForm(scheduleForm);
renderTimes();
setInterval(() => renderTimes(), 15000);
connect();
