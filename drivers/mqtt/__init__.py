"""The ``mqtt`` driver: ``config`` (the schema), ``driver`` (the runtime), ``link`` (the
broker connection), ``routing`` and ``topics`` (filters and name templates)."""
