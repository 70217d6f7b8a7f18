"""The rule engine: rules filter, transform, aggregate and alarm on events."""
