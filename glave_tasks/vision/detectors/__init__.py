"""Detector backends (config ``track.detector.backend``): one module per backend, named as the
backend, registered in ``glave_tasks.backends``. Each finds objects on a video's dense frame sample."""
