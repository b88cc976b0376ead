"""CaptionBridge (GLaVE-Cap steps 4-6): overview, dual-stream local captions, scene summary.

``facts`` gathers what ingest and track know about each video; ``requests`` turns it into
model requests one dependency level at a time; ``rules`` answers those requests without a
model; ``scenes`` validates and repairs scene splits.
"""
