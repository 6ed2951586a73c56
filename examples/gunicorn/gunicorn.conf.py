"""Gunicorn settings that load one warm Whisper model per worker process.

    gunicorn -c examples/gunicorn/gunicorn.conf.py examples.gunicorn.app:app

The model is loaded in ``post_fork``, which runs in each forked worker, never
in ``on_starting``/``when_ready``, which run in the master: a model (or a CUDA
context) made in the master does not survive the fork (faster-whisper #907).
"""

import logging
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Keep the default: the app is imported in each worker, not in the master.
preload_app = False
# Loading and warming the model happens before a worker answers; allow for it.
timeout = 120


def post_fork(server, worker):
    # Send the loader's start-up banner to gunicorn's error log.
    loader_log = logging.getLogger("worker")
    loader_log.setLevel(logging.INFO)
    for handler in server.log.error_log.handlers:
        loader_log.addHandler(handler)
    # Tell the loader how many processes share the cores (ASR_CPU_THREADS=0).
    from worker.asr import get_model, set_pool_size

    set_pool_size(workers)
    get_model()
