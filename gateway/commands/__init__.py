"""Commands from the cloud: declared, authorised, run once, answered and audited."""
