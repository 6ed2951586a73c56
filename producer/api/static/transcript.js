// The transcript view: segments and words synced with the player, speakers, search, downloads.

import * as api from "./api.js";
import { clock, el, saveBlob } from "./dom.js";
import { describe } from "./errors.js";

const COLOURS = 8; // speaker-0 .. speaker-7 in style.css

export class TranscriptView {
  constructor(root) {
    this.root = root;
    this.player = root.querySelector("#player");
    this.playButton = root.querySelector("#play");
    this.segmentsList = root.querySelector("#segments");
    this.speakersList = root.querySelector("#speakers");
    this.search = root.querySelector("#search");
    this.searchCount = root.querySelector("#search-count");
    this.downloadError = root.querySelector("#download-error");
    this.segments = [];
    this.current = null;
    this.job = null;
    this.audioUrl = null;

    this.segmentsList.addEventListener("click", (event) => this.#seekTo(event.target));
    for (const kind of ["timeupdate", "seeked"]) this.player.addEventListener(kind, () => this.#follow());
    for (const kind of ["play", "pause", "ended"]) this.player.addEventListener(kind, () => this.#playing());
    this.playButton.addEventListener("click", () => (this.player.paused ? this.player.play() : this.player.pause()));
    this.search.addEventListener("input", () => this.#find());
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.#nextMatch();
      }
    });
    for (const button of root.querySelectorAll("button.download")) {
      button.addEventListener("click", () => this.#download(button.dataset.format));
    }
  }

  /** Show `job`'s transcript (`result`: the worker's json); play its File where this tab has it. */
  show(job, result) {
    this.job = job;
    this.root.hidden = false;
    this.root.querySelector("#transcript-name").textContent = job.name;
    if (this.audioUrl) URL.revokeObjectURL(this.audioUrl);
    this.audioUrl = job.file ? URL.createObjectURL(job.file) : null;
    if (this.audioUrl) this.player.src = this.audioUrl;
    else this.player.removeAttribute("src");
    this.player.hidden = this.playButton.hidden = !this.audioUrl;
    this.root.querySelector("#no-audio").hidden = Boolean(this.audioUrl);

    const speakers = [...new Set((result.segments || []).map((s) => s.speaker).filter(Boolean))];
    this.#speakers(speakers);
    this.segments = (result.segments || []).map((segment, index) => this.#segment(segment, index, speakers));
    this.segmentsList.replaceChildren(...this.segments.map((s) => s.item));
    this.root.querySelector('button[data-format="rttm"]').disabled = speakers.length === 0;
    this.current = null;
    this.downloadError.textContent = "";
    this.#find();
  }

  #speakers(speakers) {
    const items = speakers.map((speaker, index) => {
      const input = el("input", { type: "text", id: `speaker-name-${index}`, value: `Speaker ${index + 1}` });
      input.addEventListener("input", () => {
        for (const label of this.segmentsList.querySelectorAll(`.speaker-name[data-speaker-index="${index}"]`)) {
          label.textContent = input.value;
        }
      });
      const label = el("label", { for: input.id }, el("span", { class: "swatch" }), speaker);
      return el("li", { class: `speaker-${index % COLOURS}` }, label, input);
    });
    this.speakersList.replaceChildren(...items);
    this.speakersList.hidden = speakers.length === 0;
  }

  #segment(segment, index, speakers) {
    const time = el("button", { type: "button", class: "time", "aria-label": `Play from ${clock(segment.start)}` }, clock(segment.start));
    const text = el("span", { class: "text" });
    const words = segment.words || [];
    if (words.length) {
      for (const [n, word] of words.entries()) {
        // Whisper's words carry their leading space: it stays outside the clickable word.
        const [, space, spoken] = /^(\s*)(.*)$/s.exec(word.word);
        text.append(space, el("span", { class: "word", dataset: { start: word.start, end: word.end, index: n } }, spoken));
      }
    } else {
      text.append(segment.text);
    }
    const speaker = speakers.indexOf(segment.speaker);
    const item = el(
      "li",
      { class: speaker >= 0 ? `segment speaker-${speaker % COLOURS}` : "segment", dataset: { index } },
      time,
      speaker >= 0 ? el("span", { class: "speaker-name", dataset: { speakerIndex: speaker }, text: `Speaker ${speaker + 1}` }) : null,
      text,
    );
    return { item, start: segment.start, end: segment.end, text: segment.text, words: [...text.querySelectorAll(".word")] };
  }

  #seekTo(target) {
    const word = target.closest(".word");
    const segment = target.closest(".segment");
    if (!segment || !this.audioUrl) return;
    const start = word ? Number(word.dataset.start) : this.segments[Number(segment.dataset.index)].start;
    this.player.currentTime = start;
    if (target.closest(".time")) this.player.play();
    this.#follow();
  }

  #follow() {
    const t = this.player.currentTime;
    const found = this.segments.find((s) => s.start <= t && t < s.end) || null;
    if (found !== this.current) {
      if (this.current) {
        this.current.item.classList.remove("current");
        this.current.item.removeAttribute("aria-current");
      }
      if (found) {
        found.item.classList.add("current");
        found.item.setAttribute("aria-current", "true");
      }
      this.current = found;
    }
    for (const segment of this.segments) {
      for (const word of segment.words) {
        word.classList.toggle("spoken", segment === found && Number(word.dataset.start) <= t && t < Number(word.dataset.end));
      }
    }
  }

  #playing() {
    this.playButton.textContent = this.player.paused ? "Play" : "Pause";
  }

  #find() {
    const query = this.search.value.trim().toLowerCase();
    let count = 0;
    for (const segment of this.segments) {
      const hit = Boolean(query) && segment.text.toLowerCase().includes(query);
      segment.item.classList.toggle("match", hit);
      for (const word of segment.words) word.classList.toggle("hit", hit && word.textContent.toLowerCase().includes(query));
      count += hit;
    }
    this.matches = this.segments.filter((s) => s.item.classList.contains("match"));
    this.matchAt = -1;
    this.searchCount.textContent = query ? `${count} segment${count === 1 ? "" : "s"} match` : "";
  }

  #nextMatch() {
    if (!this.matches || !this.matches.length) return;
    this.matchAt = (this.matchAt + 1) % this.matches.length;
    const item = this.matches[this.matchAt].item;
    item.scrollIntoView({ block: "center" });
    item.querySelector(".time").focus();
  }

  async #download(format) {
    this.downloadError.textContent = "";
    try {
      const answer = await api.transcript(this.job.id, format);
      const stem = this.job.name.replace(/\.[^.]*$/, "").replace(/[^\w.-]+/g, "_").slice(0, 80) || "transcript";
      saveBlob(await answer.blob(), `${stem}.${format}`);
    } catch (error) {
      const { words, type, message } = describe(error);
      this.downloadError.textContent = `${words} (${type}: ${message})`;
    }
  }
}
