"""Actions: what the gateway can do to devices, for rules and commands alike."""
