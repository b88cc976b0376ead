"""Caption evaluation: how much a run's captions say about their videos, the GLaVE-Bench way.

A judge answers multiple-choice questions from the caption alone (A-D, or E when the caption
does not say), several times per question with a majority vote; accuracy per dimension and per
video, and the E-rate, tell analysts what the captions cover and whether a change helped.

- :mod:`.questions`  question sets: benchmark annotation files, or the records' own QA
- :mod:`.sources`    captions: a run, an exported dataset, a folder of GLaVE records
- :mod:`.judge`      judge prompts and batched, strictly parsed requests through the engine layer
- :mod:`.embedded`   the weightless embedded judge (engine backend ``embedded``) and its calibration
- :mod:`.scoring`    majority vote, scores, run-vs-run comparison
- :mod:`.pipeline`   ``glave evaluate``: tables, summary, page, baseline regression
- :mod:`.gate`       the validate stage's self-consistency gate over a run's own QA
- :mod:`.tracking`   evaluation metrics for MLflow
"""
