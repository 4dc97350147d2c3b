"""The live dashboard (``autonoma dashboard``, and ``start``/``demo`` on a terminal).

It reads only the journal, through the fold, and sends only commands: it never
reaches into actors, so it works from another process as well as beside a run.
"""
