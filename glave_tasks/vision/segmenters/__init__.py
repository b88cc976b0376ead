"""Segmenter backends (config ``track.segmenter.backend``): one module per backend, named as the
backend, registered in ``glave_tasks.backends``. Each turns per-frame detections into tracks
with stable IDs and masks."""
