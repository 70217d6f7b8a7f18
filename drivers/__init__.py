"""Event sources: one package or module per driver kind."""
