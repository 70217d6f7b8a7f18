"""The ``gpio`` driver: ``config`` (one schema per mode), ``driver`` (the runtime),
``debounce``, ``backend`` (libgpiod v2) and a simulated chip (``sim``, ``timelines``)."""
