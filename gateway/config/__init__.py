"""Configuration: schema types, the YAML loader with positions, the file's schema."""
