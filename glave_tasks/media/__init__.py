"""Video media handling for the ingest stage: probing and rejection reasons, one streaming decode
pass, frame sampling, keyframe selection by similarity, and shot cuts.

Modules here import PyAV, OpenCV and PySceneDetect at the top; stage modules import them lazily.
"""
