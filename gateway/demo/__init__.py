"""The laptop demo's helpers: a private Mosquitto, and a subscriber that counts deliveries."""
