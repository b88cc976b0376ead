"""Vision experts of the track stage (GLaVE-Cap TrackFusion and Set-of-Mark prompts).

Detectors (kind ``detector``) find objects on the dense frame sample; segmenters (kind
``segmenter``) turn per-frame detections into tracks with stable IDs and masks; ``set_of_mark``
draws the visual prompts. Heavy libraries are imported only inside the backends that need them.
"""
