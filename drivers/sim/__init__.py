"""The ``sim`` driver: simulated signals; ``config`` (the schema), ``driver`` (the runtime)."""
