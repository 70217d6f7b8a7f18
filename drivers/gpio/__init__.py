"""The ``gpio`` driver: buttons, contacts and pulse counters, on libgpiod or a simulated chip."""
