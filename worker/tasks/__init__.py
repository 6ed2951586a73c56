"""Thin Celery tasks over the pipeline, one module per task family."""
