"""Built-in I²C chip profiles, one module per chip, each checked against its datasheet."""
