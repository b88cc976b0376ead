"""The analysts' report of a run: one self-contained HTML file, a JSON summary, GX Data Docs."""
