"""Simulated sensors and vehicles (firmware-sim/): run the real edge code without hardware."""
