"""What ``tidegate buffer`` does to an outbox file: inspect (``access``, ``stats``,
``listing``; named together in ``inspect``), export (``format``), replay, purge, and
noting the change in the ledger (``note``). The only users of sqlite-utils."""
