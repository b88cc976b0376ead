"""QA generation (GLaVE-Cap step 7): per-scene and per-video QA, refine, four options."""
