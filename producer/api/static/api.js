// The jobs API, called with the key as a bearer header (never in a URL).

const KEY = "asr-worker.api-key";

/** The API key, kept in this tab's session storage only. */
export const apiKey = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An error answer of the API ({"error": {message, type, param, code}}), or a failed request. */
export class ApiError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

async function errorOf(answer) {
  let error = {};
  try {
    error = (await answer.json()).error || {};
  } catch {
    // not JSON: the status line says what there is to say
  }
  return new ApiError(answer.status, error.message || answer.statusText, error.code, error.param);
}

/** fetch() of an API path with the key; throws ApiError for an error answer. */
export async function call(path, { method = "GET", body, headers = {}, signal } = {}) {
  let answer;
  try {
    answer = await fetch(path, {
      method,
      body,
      signal,
      cache: "no-store",
      credentials: "omit",
      headers: { ...headers, Authorization: `Bearer ${apiKey.get() || ""}` },
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `cannot reach the server: ${error.message}`, "network_error");
  }
  if (!answer.ok) throw await errorOf(answer);
  return answer;
}

export const jobPath = (id) => `/v1/jobs/${encodeURIComponent(id)}`;

/** The models the live workers serve. */
export async function models() {
  return (await (await call("/v1/models")).json()).data;
}

/** Submit an uploaded File (multipart) or an audio URL (JSON); the 202's body. */
export async function submit({ file, url, options, model }) {
  if (file) {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("options", JSON.stringify(options));
    if (model) form.append("model", model);
    return (await call("/v1/jobs", { method: "POST", body: form })).json();
  }
  const body = JSON.stringify({ audio: url, options, ...(model ? { model } : {}) });
  const headers = { "Content-Type": "application/json" };
  return (await call("/v1/jobs", { method: "POST", body, headers })).json();
}

export async function job(id) {
  return (await call(jobPath(id))).json();
}

export async function cancel(id) {
  return (await call(jobPath(id), { method: "DELETE" })).json();
}

/** The transcript as text (`format` json, txt, srt, vtt, tsv or rttm). */
export async function transcript(id, format) {
  return call(`${jobPath(id)}/transcript?format=${encodeURIComponent(format)}`);
}

/**
 * The job's server-sent events, read with fetch() and a stream reader (EventSource cannot
 * send an Authorization header): yields {kind, data} for each `state` and the last `done`.
 */
export async function* events(id, signal) {
  const answer = await call(`${jobPath(id)}/events`, { signal, headers: { Accept: "text/event-stream" } });
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        let kind = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) yield { kind, data: JSON.parse(data.join("\n")) };
      }
    }
  } finally {
    reader.releaseLock();
  }
}
