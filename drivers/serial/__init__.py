"""The ``serial`` driver: ``config`` (the schema), ``driver`` (the runtime), ``commands``
it writes, and a simulated device on a pty (``sim_config``, ``sim_frames``, ``sim``)."""
