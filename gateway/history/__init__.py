"""The optional local history of the signals (``history:``) and what reads it.

``config`` is the section (imported by the schema, so it stays light);
``samples`` turns routed events into numbers, ``store`` writes and downsamples
them (numpy, in the writer thread), ``recorder`` runs it beside the pipeline,
``query`` reads the file read-only, ``gaps`` finds the silences, and
``chart_text`` / ``chart_image`` draw for ``tidegate plot``.
"""
