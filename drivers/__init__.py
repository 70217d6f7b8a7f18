"""Event sources: a package per driver kind, each a light ``config`` module (the schema,
read by ``tidegate check``) and a ``driver`` module (the runtime, imported when a driver
of that kind is built); ``builtins`` lists them. Shared: ``framing``, ``parsing``,
``kinds`` (one model per kind of a section)."""
