"""Operating a gateway: control socket, status, metrics, sd_notify, service install, logs."""
