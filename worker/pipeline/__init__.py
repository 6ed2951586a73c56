"""Pure code, no Celery: audio, options, settings, errors, decoding, segments, results."""
