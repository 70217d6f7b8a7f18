"""Rule operators: one module per operator."""
