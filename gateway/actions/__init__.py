"""Actions: what commands and rules make devices do, and the rules that guard them."""
