"""The Celery side of the transcription worker.

Start it with ``celery -A worker worker``; Celery finds the app in
``worker.celery``. The model loader is ``worker.asr`` and can be used without
Celery (see the README's Gunicorn example).
"""

__all__: list[str] = []
