"""Modbus RTU and TCP on pymodbus: a register map in YAML, polled per slave."""
