"""The outbox: every accepted event on disk until the broker acknowledged it."""
