// The job list: each job's name, state, live progress, error in plain words, cancel and open.

import * as api from "./api.js";
import { el } from "./dom.js";
import { describe } from "./errors.js";

const ENDED = new Set(["SUCCESS", "FAILURE", "REVOKED"]);
const STATES = {
  UPLOADING: "uploading",
  PENDING: "waiting",
  RECEIVED: "waiting",
  STARTED: "started",
  PROGRESS: "transcribing",
  RETRY: "retrying",
  SUCCESS: "done",
  FAILURE: "failed",
  REVOKED: "cancelled",
};

export class JobList {
  /** `list`: the <ul>; `onDone(job)` when a job succeeds; `onOpen(job)` when asked to show it. */
  constructor(list, { onDone, onOpen, onAuth }) {
    this.list = list;
    this.onDone = onDone;
    this.onOpen = onOpen;
    this.onAuth = onAuth;
    this.jobs = [];
  }

  /** Add a job for `name` (a File's name or a URL); `file` is kept to play it back. */
  add({ name, file = null }) {
    const job = { id: null, name, file, state: "UPLOADING", percent: 0, error: null };
    job.row = this.#row(job);
    this.jobs.push(job);
    this.list.prepend(job.row.item);
    this.#show(job);
    return job;
  }

  /** Submit `job` and follow it to its end. */
  async start(job, request) {
    try {
      const accepted = await api.submit(request);
      job.id = accepted.id;
      job.state = accepted.state;
    } catch (error) {
      this.#fail(job, error);
      return;
    }
    this.#show(job);
    await this.follow(job);
  }

  /** Open a job by id (submitted elsewhere): follow it like one of ours. */
  async open(id) {
    const job = this.add({ name: id });
    job.id = id;
    job.state = "PENDING";
    this.#show(job);
    await this.follow(job);
  }

  /** Follow `job` through its events until it ends; poll if the stream breaks. */
  async follow(job) {
    job.abort = new AbortController();
    try {
      for await (const { kind, data } of api.events(job.id, job.abort.signal)) {
        this.#update(job, data);
        if (kind === "done") break;
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error.status === 401 || error.status === 404) return this.#fail(job, error);
    }
    while (!ENDED.has(job.state)) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      try {
        this.#update(job, await api.job(job.id));
      } catch (error) {
        if (error.status !== 0) return this.#fail(job, error);
      }
    }
    if (job.state === "SUCCESS") this.onDone(job);
  }

  #update(job, view) {
    job.state = view.state;
    if (view.progress && typeof view.progress.percent === "number") job.percent = view.progress.percent;
    if (view.state === "SUCCESS") job.percent = 100;
    if (view.error) job.error = describe(view.error);
    else if (view.state === "REVOKED") job.error = describe({ type: "REVOKED", message: "" });
    this.#show(job);
  }

  #fail(job, error) {
    if (error.status === 401) this.onAuth(error);
    job.state = "FAILURE";
    job.error = describe(error);
    this.#show(job);
  }

  #row(job) {
    const name = el("span", { class: "job-name", text: job.name });
    const state = el("span", { class: "job-state" });
    const progress = el("progress", { max: "100", value: "0" });
    const cancel = el("button", { type: "button", class: "cancel", onclick: () => this.#cancel(job) }, "Cancel");
    const open = el("button", { type: "button", class: "open", hidden: true, onclick: () => this.onOpen(job) }, "Show transcript");
    const words = el("span", { class: "error-words" });
    const detail = el("span", { class: "error-detail" });
    const error = el("p", { class: "error", role: "alert", hidden: true }, words, " ", detail);
    const item = el("li", { class: "job" }, el("div", { class: "row" }, name, state, progress, cancel, open), error);
    return { item, name, state, progress, cancel, open, error, words, detail };
  }

  #show(job) {
    const row = job.row;
    const label = STATES[job.state] || job.state.toLowerCase();
    row.state.textContent = job.state === "PROGRESS" ? `${label} ${job.percent.toFixed(0)}%` : label;
    row.item.dataset.state = job.state;
    if (job.id) row.item.dataset.jobId = job.id;
    row.progress.value = job.percent;
    row.progress.setAttribute("aria-label", `${job.name}: ${label}`);
    row.cancel.hidden = ENDED.has(job.state) || !job.id;
    row.open.hidden = job.state !== "SUCCESS";
    row.error.hidden = !job.error;
    if (job.error) {
      row.words.textContent = job.error.words;
      row.detail.textContent = `(${job.error.type}${job.error.message ? ": " + job.error.message : ""})`;
    }
  }

  async #cancel(job) {
    job.row.cancel.disabled = true;
    try {
      this.#update(job, await api.cancel(job.id));
    } catch (error) {
      if (error.code !== "job_ended") this.#fail(job, error);
    } finally {
      job.row.cancel.disabled = false;
    }
  }
}
