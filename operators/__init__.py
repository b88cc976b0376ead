"""Airflow operators that run ``glave`` commands: a pod per task in production, a subprocess in
the embedded default. :class:`operators.glave_operator.GlaveOperator` documents a task's parameters;
:mod:`operators.factory` picks the local or the pod operator from the config."""
