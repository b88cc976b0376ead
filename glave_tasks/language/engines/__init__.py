"""Engine backends (config ``engine.backend``): one module per backend, named as the backend,
registered in ``glave_tasks.backends``. Each answers a batch of ``LLMRequest``s."""
