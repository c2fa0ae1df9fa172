"""Gateway: RabbitMQ topology, device provisioning and the broker management client."""
