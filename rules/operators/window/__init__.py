"""Window operators: tumbling, hopping, sliding, session and count windows, and aggregates."""
