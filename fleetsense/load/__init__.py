"""Simulated traffic for a running stack, in the roof because it stands on several tiers at once: drives of the
real edge agent on simulated chips recorded in virtual time (virtual_drive), and the fleet load generator
(`python -m fleetsense.load provision|run`): thousands of simulated vehicles, each its own broker user over its own
MQTT connection, publishing pooled batches (firmware-sim/pool.py) re-stamped by the wire module."""
