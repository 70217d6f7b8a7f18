"""The rule expression language: a safe, allow-list evaluator (never ``eval``)."""
