"""The ``echo`` driver: a plugin that emits its configured words, for tidegate's tests."""
