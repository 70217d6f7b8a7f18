"""DS18B20-family 1-Wire sensors through the kernel's w1 sysfs interface."""
