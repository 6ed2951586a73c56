// The API's typed errors in plain words; the type and the server's message stay visible too.

const WORKER_ERRORS = {
  AudioDecodeError: "The file could not be read as audio: it may be damaged, or not audio at all.",
  EmptyAudioError: "The file holds no sound to transcribe.",
  AudioTooLongError: "The recording is longer than the workers accept.",
  FileTooLargeError: "The file is larger than the workers accept.",
  AudioNotFoundError: "The workers could not find the audio at that place.",
  PathNotAllowedError: "The workers are not allowed to read audio from that place.",
  InvalidPathError: "That is not a path or URL the workers can read.",
  NotAFileError: "That place is a folder, not a file.",
  AudioUnreadableError: "The workers could not read the audio.",
  AccessDeniedError: "The workers were refused access to the audio.",
  InvalidOptionsError: "The workers refused the options chosen.",
  InputError: "The workers refused this input.",
  RedeliveryLimitError: "This file made a worker crash each time it was tried.",
  ModelUnavailableError: "The model asked for is not available on the workers.",
  DiarizationUnavailableError: "Speaker labels are not available: no worker runs with diarization on.",
  TransientError: "A passing failure on the workers; try again.",
  TranscriptionTimeoutError: "The transcription took longer than the workers allow.",
  TimeLimitExceeded: "The transcription took longer than the workers allow.",
  SoftTimeLimitExceeded: "The transcription took longer than the workers allow.",
  TaskRevokedError: "The job was cancelled.",
  REVOKED: "The job was cancelled.",
};

const API_CODES = {
  invalid_api_key: "The API key was refused.",
  unsupported_media_type: "That file is not audio or video.",
  file_too_large: "The file is larger than the server accepts.",
  broker_unavailable: "The server cannot reach its queue; try again shortly.",
  job_not_found: "There is no such job (or its result has expired).",
  job_ended: "The job had already ended.",
  job_cancelled: "The job was cancelled.",
  model_not_found: "No live worker serves that model.",
  network_error: "The server cannot be reached.",
};

/** {words, type, message} for a job's error ({type, message}) or an ApiError. */
export function describe(error) {
  if (error.type !== undefined && !(error instanceof Error)) {
    const words = WORKER_ERRORS[error.type] || "The transcription failed.";
    return { words, type: error.type, message: error.message || "" };
  }
  const words = API_CODES[error.code] || (error.status >= 500 ? "The server failed." : "The request was refused.");
  return { words, type: error.code || `HTTP ${error.status}`, message: error.message || "" };
}
