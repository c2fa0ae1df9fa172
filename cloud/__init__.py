"""Cloud: the PyFlink jobs, the Cassandra data model and the serving queries."""
