"""Remote rules updates that cannot brick a gateway: validate, apply, confirm by health
or roll back, keep the last versions (``tidegate config push|history|rollback``)."""
