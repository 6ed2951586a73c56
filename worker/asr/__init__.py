"""The Whisper model loader: one warm model per process.

The interface of the original design::

    from worker.asr import get_model, get_model_config, load_model, unload_model
    model = get_model()            # loads and warms on first use, then the same object
    load_model(force_reload=True)  # reload (after changing the environment, say)
    unload_model()                 # free it; the next get_model() loads again
"""

from __future__ import annotations

from worker.asr.cuda import detect_cuda_availability
from worker.asr.loader import get_model, get_model_config, load_model, set_pool_size, unload_model

__all__ = [
    "detect_cuda_availability",
    "get_model",
    "get_model_config",
    "load_model",
    "set_pool_size",
    "unload_model",
]
