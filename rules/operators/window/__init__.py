"""Window operators: tumbling, hopping, sliding, session and count windows, and aggregates.

``operator`` documents windows and holds what every kind shares (the ``window``
operator); ``config`` holds one schema model per kind; each kind runs in its own
module and declares the models it runs.
"""
