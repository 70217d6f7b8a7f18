"""Parsing: turning one frame into events, as a ``parse:`` section says."""
