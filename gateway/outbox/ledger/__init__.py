"""The ledger: what the outbox remembers outside its SQLite file, and reconciling the two."""
