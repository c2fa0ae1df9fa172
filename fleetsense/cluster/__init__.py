"""A multi-host fleetsense cluster on one machine: hosts as network namespaces (netns.py) from one plan (plan.py)."""
