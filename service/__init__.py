"""The service layer: what fleet operators read and set (drivers and their assignments, the HTTP API, live events,
webhooks). It reads the cloud's tables and never writes what the stream job owns."""
