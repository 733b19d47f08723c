// The jobs page: submit a job, watch it, see its output, enhance or cancel it, list past jobs.
// Plain browser JavaScript, no build step, no library. Every URL is relative to the page (/ui/),
// so the page works under any root path the adapter is served at.

const BASE = new URL("../", location.href);
const TOKEN_KEY = "modal-ai-runner.token";
const PIPELINE_KEY = "modal-ai-runner.pipeline";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const POLL_MS = 1000; // while the event stream is unavailable
const HISTORY_MS = 3000; // history refresh while any listed job is still queued or running
const MAX_STREAMS = 100; // event streams opened for one job before polling takes over

const $ = (id) => document.getElementById(id);
const state = {
  catalog: [],
  authRequired: false,
  job: null, // the job shown in the job panel
  watch: null, // AbortController of its event stream or polling
  shownOutputs: "", // the job id whose outputs are on screen
  objectUrls: [],
  history: new Map(), // id -> job, newest first
  cursor: null,
  historyTimer: 0,
};

// --- API ------------------------------------------------------------------------------------

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function apiUrl(path) {
  return new URL(path, BASE);
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// The message of any error body this service answers: the jobs door's {"error": {"message"}},
// the runner's {"detail": {"msg"}}, a validation list {"detail": [{"loc", "msg"}]}, a string.
function errorMessage(body) {
  if (!body || typeof body !== "object") return "";
  if (body.error && typeof body.error.message === "string") return body.error.message;
  const detail = body.detail;
  if (typeof detail === "string") return detail;
  if (detail && typeof detail.msg === "string") return detail.msg;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const where = (e.loc || []).filter((part) => part !== "body").join(".");
        return where ? `${where}: ${e.msg}` : e.msg;
      })
      .join("; ");
  }
  return "";
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const bearer = token();
  if (bearer) headers.set("Authorization", `Bearer ${bearer}`);
  let response;
  try {
    response = await fetch(apiUrl(path), { ...options, headers });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`The service did not answer (${error.message}).`, 0);
  }
  if (response.ok) return response;
  let message = "";
  try {
    message = errorMessage(await response.json());
  } catch {
    // not JSON: the status line says enough
  }
  message = message || `${response.status} ${response.statusText}`.trim();
  if (response.status === 401) message += " Enter a valid API token above.";
  const retry = response.headers.get("Retry-After");
  if (response.status === 429 && retry) message += ` Try again in ${retry} s.`;
  throw new ApiError(message, response.status);
}

async function apiJson(path, options) {
  return (await api(path, options)).json();
}

function jobPath(id, tail = "") {
  return `v1/jobs/${encodeURIComponent(id)}${tail}`;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- messages -------------------------------------------------------------------------------

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  if (error.name === "AbortError") return;
  box.textContent = error.message || String(error);
  box.hidden = false;
}

// --- the form -------------------------------------------------------------------------------

function option(value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

function selectedPipeline() {
  return state.catalog.find((entry) => entry.pipeline === $("pipeline").value);
}

function labelled(id, text, control) {
  const wrap = document.createElement("div");
  wrap.className = "field";
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = text;
  control.id = id;
  wrap.append(label, control);
  return wrap;
}

function paramInput(param) {
  const id = `param-${param.name}`;
  const spaced = param.name.replaceAll("_", " ");
  const name = spaced.charAt(0).toUpperCase() + spaced.slice(1);
  if (param.type === "boolean") {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = Boolean(param.default);
    box.dataset.param = param.name;
    box.dataset.type = param.type;
    const wrap = labelled(id, name, box);
    wrap.classList.add("check");
    return wrap;
  }
  const input = document.createElement("input");
  input.dataset.param = param.name;
  input.dataset.type = param.type;
  if (param.type === "integer" || param.type === "number") {
    input.type = "number";
    input.inputMode = param.type === "integer" ? "numeric" : "decimal";
    input.step = param.type === "integer" ? "1" : "any";
  } else {
    input.type = "text";
  }
  if (param.default !== null && param.default !== undefined) {
    input.placeholder = String(param.default);
  }
  if (param.description) input.title = param.description;
  return labelled(id, name, input);
}

function showPipeline() {
  const entry = selectedPipeline();
  const models = $("model");
  models.replaceChildren();
  $("uploads").replaceChildren();
  $("params").replaceChildren();
  if (!entry) return;
  localStorage.setItem(PIPELINE_KEY, entry.pipeline);
  for (const model of entry.models) {
    const text = model.default ? `${model.model_id} (default)` : model.model_id;
    models.append(option(model.model_id, text));
  }
  const chosen = entry.models.find((model) => model.default) || entry.models[0];
  if (chosen) models.value = chosen.model_id;
  $("pipeline-about").textContent = entry.description;
  const promptField = $("prompt-field");
  promptField.hidden = !entry.prompt_field;
  $("prompt-label").textContent = entry.prompt_field === "text" ? "Text" : "Prompt";
  for (const upload of entry.uploads) {
    const input = document.createElement("input");
    input.type = "file";
    input.accept = upload.accept.join(",");
    input.required = upload.required;
    input.dataset.upload = upload.field;
    const text = upload.field.charAt(0).toUpperCase() + upload.field.slice(1);
    $("uploads").append(labelled(`upload-${upload.field}`, text, input));
  }
  for (const param of entry.params) $("params").append(paramInput(param));
  $("options").hidden = entry.params.length === 0;
}

async function loadCatalog() {
  const body = await apiJson("v1/jobs/pipelines");
  state.catalog = body.data;
  state.authRequired = body.auth_required;
  const select = $("pipeline");
  select.replaceChildren(...body.data.map((entry) => option(entry.pipeline, entry.summary)));
  const remembered = localStorage.getItem(PIPELINE_KEY);
  if (body.data.some((entry) => entry.pipeline === remembered)) select.value = remembered;
  if (body.data.length === 0) $("pipeline-about").textContent = "No pipeline is served here.";
  showPipeline();
}

function paramsOf(entry) {
  const params = {};
  const prompt = $("prompt").value;
  if (entry.prompt_field === "messages") {
    params.messages = [{ role: "user", content: prompt }];
  } else if (entry.prompt_field) {
    params[entry.prompt_field] = prompt;
  }
  for (const input of $("params").querySelectorAll("[data-param]")) {
    const name = input.dataset.param;
    const param = entry.params.find((p) => p.name === name);
    if (input.dataset.type === "boolean") {
      if (input.checked !== Boolean(param.default)) params[name] = input.checked;
      continue;
    }
    const raw = input.value.trim();
    if (raw === "") continue;
    if (input.dataset.type === "integer") params[name] = Number.parseInt(raw, 10);
    else if (input.dataset.type === "number") params[name] = Number(raw);
    else params[name] = raw;
  }
  return params;
}

async function submitJob(event) {
  event.preventDefault();
  const entry = selectedPipeline();
  if (!entry) return;
  const files = [...$("uploads").querySelectorAll("input[type=file]")];
  const missing = files.find((input) => input.required && input.files.length === 0);
  if (missing) {
    showError(new Error(`Choose a file for "${missing.dataset.upload}" first.`));
    missing.focus();
    return;
  }
  const fields = { pipeline: entry.pipeline, model_id: $("model").value, params: paramsOf(entry) };
  const headers = { "Idempotency-Key": newKey() };
  let body;
  if (files.length > 0) {
    body = new FormData();
    body.append("pipeline", fields.pipeline);
    body.append("model_id", fields.model_id);
    body.append("params", JSON.stringify(fields.params));
    for (const input of files) {
      if (input.files.length > 0) body.append(input.dataset.upload, input.files[0]);
    }
  } else {
    body = JSON.stringify(fields);
    headers["Content-Type"] = "application/json";
  }
  const button = $("submit");
  button.disabled = true;
  try {
    const job = await apiJson("v1/jobs", { method: "POST", body, headers });
    showError(null);
    openJob(job);
    remember(job, true);
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// --- the job panel --------------------------------------------------------------------------

function describe(job) {
  const params = job.params || {};
  const prompt = params.prompt || params.text || params.messages?.[0]?.content || "";
  return prompt ? `${job.pipeline} · “${prompt}”` : job.pipeline;
}

function statusText(job) {
  switch (job.status) {
    case "queued":
      return job.queue_position === null || job.queue_position === undefined
        ? "Queued."
        : `Queued: ${job.queue_position === 0 ? "next to run" : `${job.queue_position} ahead`}.`;
    case "running":
      return "Running.";
    case "succeeded":
      return "Done.";
    case "failed":
      return `Failed: ${job.error?.message || "no reason given"}`;
    case "canceled":
      return "Canceled.";
    default:
      return job.status;
  }
}

function showProgress(job) {
  const bar = $("progress");
  const progress = job.progress;
  let percent = null;
  if (job.status === "succeeded") percent = 100;
  else if (progress && typeof progress.fraction === "number") percent = progress.fraction * 100;
  else if (job.status === "queued") percent = 0;
  if (percent === null) {
    if (job.status === "running") bar.removeAttribute("value"); // indeterminate until a step
  } else {
    bar.value = Math.round(Math.min(100, Math.max(0, percent)));
  }
  bar.setAttribute("aria-valuetext", percent === null ? "waiting" : `${bar.value}%`);
  $("job-step").textContent = progress && progress.total ? stepText(job.pipeline, progress) : "";
}

// Text pipelines count generated tokens out of the most allowed: the answer may end sooner.
const TOKEN_PIPELINES = new Set(["llm", "image-to-text"]);

function stepText(pipeline, progress) {
  if (TOKEN_PIPELINES.has(pipeline)) {
    return `Token ${progress.step} of at most ${progress.total}`;
  }
  return `Step ${progress.step} of ${progress.total}`;
}

function render(job) {
  if (!state.job || state.job.id !== job.id) return;
  state.job = job;
  $("job").hidden = false;
  $("job-id").textContent = job.id;
  const parent = job.parent_id ? ` · enhanced from ${job.parent_id}` : "";
  $("job-about").textContent = `${describe(job)} · ${job.model_id}${parent}`;
  const status = statusText(job);
  if ($("job-status").textContent !== status) $("job-status").textContent = status;
  $("job-status").dataset.status = job.status;
  showProgress(job);
  $("cancel").hidden = TERMINAL.has(job.status);
  const enhance = enhancedSettings(job);
  $("enhance").hidden = job.status !== "succeeded" || enhance === null;
  if (enhance) $("enhance").title = `Run it again with ${enhance}`;
  if (job.status === "succeeded" && state.shownOutputs !== job.id) {
    state.shownOutputs = job.id;
    showOutputs(job).catch(showError);
  }
  remember(job, false);
}

// What Enhance changes for the job's model ("num_inference_steps=50"), null when nothing; a
// model the catalog does not list (no longer served) is left to the API to answer.
function enhancedSettings(job) {
  const entry = state.catalog.find((e) => e.pipeline === job.pipeline);
  const model = entry?.models.find((m) => m.model_id === job.model_id);
  if (!model) return "its enhanced settings";
  const changes = Object.entries(model.enhance || {});
  return changes.length === 0 ? null : changes.map(([k, v]) => `${k}=${v}`).join(", ");
}

function clearOutputs() {
  for (const url of state.objectUrls) URL.revokeObjectURL(url);
  state.objectUrls = [];
  state.shownOutputs = "";
  $("output").replaceChildren();
  $("download").hidden = true;
}

// An output as a blob: URL (and its bytes): the output routes need the bearer token, which an
// <img> or <video> cannot send. A link the store presigned (absolute) is used as it is.
async function fetchOutput(job, output) {
  if (/^https?:\/\//.test(output.url)) return { url: output.url, blob: null };
  const response = await api(jobPath(job.id, `/outputs/${encodeURIComponent(output.name)}`));
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  state.objectUrls.push(url);
  return { url, blob };
}

const TEXT_SHOWN = 100_000; // characters of a text output shown in the page (all downloadable)

function mediaElement(job, output, url) {
  const type = output.content_type || "";
  let element = null;
  if (type.startsWith("image/")) {
    element = document.createElement("img");
    element.alt = `Output ${output.name} of ${describe(job)}`;
  } else if (type.startsWith("video/")) {
    element = document.createElement("video");
    element.controls = true;
    element.muted = true; // browsers play muted video without a click
    element.autoplay = true;
    element.loop = true;
    element.playsInline = true;
    element.setAttribute("aria-label", `Video ${output.name} of ${describe(job)}`);
  } else if (type.startsWith("audio/")) {
    element = document.createElement("audio");
    element.controls = true;
    element.setAttribute("aria-label", `Audio ${output.name} of ${describe(job)}`);
  }
  if (element) element.src = url;
  return element;
}

async function showOutputs(job) {
  const outputs = job.result?.outputs || [];
  const text = job.result?.data?.text;
  const items = [];
  for (const [index, output] of outputs.entries()) {
    const { url, blob } = await fetchOutput(job, output);
    if (state.job?.id !== job.id) return; // another job was opened meanwhile
    let element = mediaElement(job, output, url);
    if (!element && typeof text !== "string" && blob) {
      element = document.createElement("pre");
      element.textContent = (await blob.text()).slice(0, TEXT_SHOWN);
    }
    if (element) {
      element.dataset.output = output.name;
      items.push(element);
    }
    if (index === 0) {
      const link = $("download");
      link.href = url;
      link.download = output.name;
      link.textContent = `Download ${output.name}`;
      link.hidden = false;
    }
  }
  if (typeof text === "string") {
    const pre = document.createElement("pre");
    pre.className = "text";
    pre.textContent = text;
    items.push(pre);
  }
  const seed = job.result?.data?.seed;
  if (seed !== undefined && seed !== null) {
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = `Seed ${seed}`;
    items.push(note);
  }
  $("output").replaceChildren(...items);
}

function openJob(job) {
  if (state.watch) state.watch.abort();
  if (state.job?.id !== job.id) clearOutputs();
  state.job = job;
  $("job-status").textContent = "";
  render(job);
  if (!TERMINAL.has(job.status)) {
    state.watch = new AbortController();
    watch(job.id, state.watch.signal).catch((error) => {
      if (error.name !== "AbortError") showError(error);
    });
  }
  markCurrent();
}

// Server-sent events read with fetch (EventSource cannot send the bearer token).
async function* events(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  let name = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (;;) {
      const end = buffer.search(/\r\n|\r|\n/);
      if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) break;
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (data.length > 0) yield { name, data: data.join("\n") };
        name = "message";
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One event stream of the job: "done" once the job has ended, "cut" when the stream closed
// before (the server bounds one stream's life), "refused" when none is offered.
async function follow(id, signal) {
  const response = await api(jobPath(id, "/events"), {
    headers: { Accept: "text/event-stream" },
    signal,
  });
  const type = response.headers.get("Content-Type") || "";
  if (!response.body || !type.startsWith("text/event-stream")) return "refused";
  for await (const event of events(response, signal)) {
    if (event.name !== "job" && event.name !== "message") continue;
    const job = JSON.parse(event.data);
    render(job);
    if (TERMINAL.has(job.status)) return "done";
  }
  return "cut";
}

// Follows a job by its event stream, opened again when it closes early; when the stream fails
// or is refused (a proxy that does not pass it through), by polling instead.
async function watch(id, signal) {
  for (let opened = 0; opened < MAX_STREAMS && !signal.aborted; opened += 1) {
    let ended;
    try {
      ended = await follow(id, signal);
    } catch (error) {
      if (signal.aborted) return;
      const refusal = error instanceof ApiError && error.status >= 400 && error.status < 500;
      if (refusal && error.status !== 404) throw error; // the token, say: polling would fail too
      break;
    }
    if (ended === "done") return;
    if (ended === "refused") break;
    await sleep(POLL_MS);
  }
  await poll(id, signal);
}

async function poll(id, signal) {
  while (!signal.aborted) {
    const job = await apiJson(jobPath(id), { signal });
    render(job);
    if (TERMINAL.has(job.status)) return;
    await sleep(POLL_MS);
  }
}

async function act(action) {
  const job = state.job;
  if (!job) return;
  try {
    const answer = await apiJson(jobPath(job.id, `/${action}`), { method: "POST" });
    showError(null);
    if (action === "enhance") {
      openJob(answer);
      remember(answer, true);
    } else {
      render(answer);
    }
  } catch (error) {
    showError(error);
  }
}

// --- history --------------------------------------------------------------------------------

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

// What a history row shows of a job: a row is drawn again only when this changes.
function signature(job) {
  return `${job.status}|${job.parent_id}|${job.created_at}`;
}

function historyItem(job) {
  const item = document.createElement("li");
  item.dataset.job = job.id;
  item.dataset.status = job.status;
  item.dataset.signature = signature(job);
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.dataset.status = job.status;
  badge.textContent = job.status;
  const text = document.createElement("span");
  text.className = "what";
  text.textContent = describe(job);
  const meta = document.createElement("span");
  meta.className = "hint";
  const parent = job.parent_id ? " · enhance" : "";
  meta.textContent = `${when(job.created_at)} · ${job.id}${parent}`;
  open.append(badge, text, meta);
  open.addEventListener("click", () => openJob(job));
  item.append(open);
  if (!TERMINAL.has(job.status)) {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "cancel";
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel job ${job.id}`);
    cancel.addEventListener("click", async () => {
      try {
        remember(await apiJson(jobPath(job.id, "/cancel"), { method: "POST" }), false);
        showError(null);
      } catch (error) {
        showError(error);
      }
    });
    item.append(cancel);
  }
  return item;
}

function remember(job, fresh) {
  const known = state.history.has(job.id);
  if (!known && !fresh) return;
  if (fresh && !known) state.history = new Map([[job.id, job], ...state.history]);
  else state.history.set(job.id, job);
  if (state.job?.id === job.id && state.job !== job && !TERMINAL.has(state.job.status)) {
    render(job); // a history refresh can be newer than the stream
  }
  drawHistory();
}

// Rows change in place, and only those whose job changed, so that the keyboard's focus stays
// where it was while the list refreshes (a row drawn again gets it back on the same button).
function drawHistory() {
  const list = $("history");
  const jobs = [...state.history.values()];
  const focused = document.activeElement;
  const focusedRow = list.contains(focused) ? focused.closest("li") : null;
  const rows = [...list.children];
  const sameRows =
    rows.length === jobs.length && rows.every((row, i) => row.dataset.job === jobs[i].id);
  if (sameRows) {
    rows.forEach((row, i) => {
      if (row.dataset.signature !== signature(jobs[i])) row.replaceWith(historyItem(jobs[i]));
    });
  } else {
    list.replaceChildren(...jobs.map(historyItem));
  }
  if (focusedRow && !list.contains(focused)) {
    const row = list.querySelector(`li[data-job="${CSS.escape(focusedRow.dataset.job)}"]`);
    const again = row?.querySelector(`button.${focused.className}`) || row?.querySelector("button");
    again?.focus();
  }
  markCurrent();
  $("history-state").textContent = state.history.size === 0 ? "No jobs yet." : "";
  clearTimeout(state.historyTimer);
  const busy = [...state.history.values()].some((job) => !TERMINAL.has(job.status));
  if (busy) state.historyTimer = setTimeout(refreshHistory, HISTORY_MS);
}

function markCurrent() {
  for (const item of $("history").children) {
    if (item.dataset.job === state.job?.id) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
  }
}

async function loadHistory(more) {
  const query = new URLSearchParams({ limit: "20" });
  if (more && state.cursor) query.set("cursor", state.cursor);
  const page = await apiJson(`v1/jobs?${query}`);
  if (!more) state.history = new Map();
  for (const job of page.data) state.history.set(job.id, job);
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
  drawHistory();
}

async function refreshHistory() {
  if (state.authRequired && !token()) {
    state.history = new Map();
    drawHistory();
    $("history-state").textContent = "Enter your API token above to see your jobs.";
    return;
  }
  if (document.hidden) {
    state.historyTimer = setTimeout(refreshHistory, HISTORY_MS);
    return;
  }
  try {
    await loadHistory(false);
  } catch (error) {
    $("history-state").textContent = error.message;
  }
}

// --- start ----------------------------------------------------------------------------------

function showTokenState() {
  $("token-state").textContent = token() ? "Saved in this browser." : "No token saved.";
}

function start() {
  $("token").value = token();
  showTokenState();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token").value.trim());
    showTokenState();
    showError(null);
    refreshHistory();
  });
  $("token-forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    showTokenState();
  });
  $("pipeline").addEventListener("change", showPipeline);
  $("job-form").addEventListener("submit", submitJob);
  $("enhance").addEventListener("click", () => act("enhance"));
  $("cancel").addEventListener("click", () => act("cancel"));
  $("refresh").addEventListener("click", refreshHistory);
  $("more").addEventListener("click", () => loadHistory(true).catch(showError));
  loadCatalog()
    .catch(showError)
    .then(refreshHistory);
}

start();
