"""CaptionBridge (GLaVE-Cap steps 4-6): overview, dual-stream local captions, scene summary.

``pipeline`` turns each video's facts (``language.video_facts``) into model requests one
dependency level at a time (sent by ``language.levels``); ``rules`` answers those requests
without a model; ``scenes`` validates and repairs scene splits.
"""
