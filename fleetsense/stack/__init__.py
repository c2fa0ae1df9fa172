"""The local single-machine stack: RabbitMQ, Cassandra and a Flink session cluster."""
