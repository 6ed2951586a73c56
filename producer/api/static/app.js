// The page's entry: the key, the submit form (files, drop, URL, options), jobs and transcript.

import * as api from "./api.js";
import { el } from "./dom.js";
import { describe } from "./errors.js";
import { JobList } from "./jobs.js";
import { TranscriptView } from "./transcript.js";

const $ = (selector) => document.querySelector(selector);

const keyForm = $("#key-form");
const submitForm = $("#submit-form");
const fileInput = $("#file-input");
const dropZone = $("#drop-zone");
const chosenList = $("#chosen-files");
let dropped = [];

const transcript = new TranscriptView($("#transcript-panel"));
const jobs = new JobList($("#jobs"), {
  onDone: (job) => {
    // The newest transcript replaces the one shown, unless that one is being listened to.
    if (!transcript.job || transcript.player.paused) showTranscript(job);
  },
  onOpen: (job) => showTranscript(job),
  onAuth: (error) => askForKey(describe(error).words),
});

let asked = 0; // the latest transcript asked for is the one shown, whatever order answers come in

async function showTranscript(job) {
  const ticket = ++asked;
  if (transcript.job === job) {
    transcript.root.scrollIntoView();
    return;
  }
  try {
    const result = await (await api.transcript(job.id, "json")).json();
    if (ticket === asked) transcript.show(job, result);
  } catch (error) {
    const { words, type, message } = describe(error);
    job.row.words.textContent = words;
    job.row.detail.textContent = `(${type}: ${message})`;
    job.row.error.hidden = false;
  }
}

function askForKey(message = "") {
  keyForm.hidden = false;
  submitForm.hidden = true;
  $("#key-error").textContent = message;
  $("#key-status").textContent = "";
  $("#forget-key").hidden = true;
  $("#key-input").focus();
}

/** Check the key with the server (it lists the workers' models) and open the page's forms. */
async function useKey() {
  let served;
  try {
    served = await api.models();
  } catch (error) {
    if (error.status === 401) api.apiKey.clear();
    askForKey(describe(error).words);
    return;
  }
  keyForm.hidden = true;
  submitForm.hidden = false;
  $("#jobs-panel").hidden = false;
  $("#forget-key").hidden = false;
  $("#key-status").textContent = `Key accepted; ${served.length} model${served.length === 1 ? "" : "s"} served.`;
  const select = $("#opt-model");
  select.replaceChildren(el("option", { value: "" }, "default"), ...served.map((m) => el("option", { value: m.id }, m.id)));
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  api.apiKey.set($("#key-input").value.trim());
  $("#key-input").value = "";
  useKey();
});

$("#forget-key").addEventListener("click", () => {
  api.apiKey.clear();
  askForKey();
});

function chosenFiles() {
  return [...fileInput.files, ...dropped];
}

function listChosen() {
  chosenList.replaceChildren(...chosenFiles().map((file) => el("li", {}, file.name)));
}

fileInput.addEventListener("change", listChosen);
for (const kind of ["dragenter", "dragover"]) {
  dropZone.addEventListener(kind, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
}
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  dropped = dropped.concat([...event.dataTransfer.files]);
  listChosen();
});

$("#opt-diarize").addEventListener("change", () => {
  $("#opt-speakers").disabled = !$("#opt-diarize").checked;
});

function options() {
  const chosen = { task: $("#opt-task").value };
  const language = $("#opt-language").value.trim();
  if (language) chosen.language = language;
  if ($("#opt-words").checked) chosen.word_timestamps = true;
  if ($("#opt-diarize").checked) {
    chosen.diarize = true;
    const speakers = $("#opt-speakers").value;
    if (speakers) chosen.num_speakers = Number(speakers);
  }
  const formats = [...document.querySelectorAll(".out-format:checked")].map((box) => box.value);
  if (formats.length) chosen.output_formats = formats;
  return chosen;
}

submitForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const files = chosenFiles();
  const url = $("#url-input").value.trim();
  $("#submit-error").textContent = files.length || url ? "" : "Choose a file, drop one here, or give a URL.";
  const model = $("#opt-model").value || undefined;
  const chosen = options();
  for (const file of files) {
    jobs.start(jobs.add({ name: file.name, file }), { file, options: chosen, model });
  }
  if (url) jobs.start(jobs.add({ name: url }), { url, options: chosen, model });
  fileInput.value = "";
  dropped = [];
  $("#url-input").value = "";
  listChosen();
});

$("#open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("#open-id").value.trim();
  if (id) jobs.open(id);
  $("#open-id").value = "";
});

if (api.apiKey.get()) useKey();
else askForKey();
