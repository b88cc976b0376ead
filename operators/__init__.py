"""Airflow operators that run ``glave`` commands: a pod per task in production, a subprocess in
the embedded default. Import :mod:`operators.factory`; it picks the operator from the config."""
