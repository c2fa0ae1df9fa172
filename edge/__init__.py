"""Edge agent: runs in each vehicle, reads the sensors and publishes sequenced batches over MQTT."""
