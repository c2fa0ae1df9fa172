"""`fleetsense serve`'s settings (contract: the fields' names; the auth/serve work declares their bounds and docs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetsense.service.webhook_settings import WebhookSettings


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    host: str = "127.0.0.1"  # loopback in the dev profile
    port: int = 8480
    fleet_id: str = "default"
    keyspace: str = "fleetsense"
    cassandra_contact: str = "127.0.0.1:9042"  # host[,host...]:port
    amqp_url: str | None = None  # the broker the live-event feed reads (None: no live feed)
    events_exchange: str = "fleet.events"  # where the job publishes each stored event
    secret_key: str = ""  # signs cursors, sessions' CSRF tokens; generated and kept under the data dir's secrets
    tls_cert: str | None = None  # the secure profile: TLS on the API's port
    tls_key: str | None = None
    secure_cookies: bool = False  # cookies marked Secure (set with TLS)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)  # retries, timeouts, allowed addresses
