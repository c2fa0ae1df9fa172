"""PyFlink job entry points, submitted with `fleetsense job submit`."""
