"""What ``tidegate buffer`` does to an outbox file: inspect, export, replay, purge."""
