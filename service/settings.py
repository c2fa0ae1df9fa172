"""`fleetsense serve`'s settings, each declared once with its bounds and doc (fleetsense/settings_spec.py; the table in
docs/service.md is generated from them). The stack fills them from its configuration and secrets
(fleetsense/stack/api.py): the port, the Cassandra contact, the secret key, the TLS files of the secure profile."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from fleetsense.service.webhook_settings import WebhookSettings

from fleetsense.errors import ConfigError
from fleetsense.settings_spec import check, setting

PROFILES = ("dev", "secure")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
SECRET_KEY_MIN_CHARS = 32  # a token_urlsafe(32) is 43 characters: ~256 bits
# How long the active result version is cached (service/result_version.py): a promotion reaches this process's
# requests within it. The setting's default, and the Db's when it is made without settings (tests, tools).
RESULTS_VERSION_CACHE_S = 2.0


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    host: str = setting(
        "127.0.0.1", group="listen", doc="the address to listen on; the dev profile allows only loopback"
    )
    port: int = setting(8480, least=1, most=65535, group="listen", doc="the API's TCP port")
    profile: str = setting(
        "dev",
        choices=PROFILES,
        group="listen",
        doc="dev: plain HTTP on loopback only; secure: TLS (tls_cert, tls_key) and Secure cookies",
    )
    fleet_id: str = setting("default", group="data", doc="the fleet's partition in the service tables")
    keyspace: str = setting("fleetsense", group="data", doc="the Cassandra keyspace")
    results_version_cache_s: float = setting(
        RESULTS_VERSION_CACHE_S,
        least=0.1,
        most=60,
        unit="s",
        group="data",
        doc="how long the active result version is cached: after `fleetsense job promote`, requests read the new "
        "version within this time (each request reads one version throughout)",
    )
    cassandra_contact: str = setting(
        "127.0.0.1:9042", group="data", doc="host[,host...]:port of Cassandra, logged in as the `service` user"
    )
    # The broker the live-event feed reads (None: no live feed) and the exchange the job publishes each stored
    # event to. Optional values are not scalar settings (settings_spec): kept as plain fields.
    amqp_url: str | None = None
    events_exchange: str = setting("fleet.events", group="data", doc="where the job publishes each stored event")
    secret_key: str = setting(
        "",
        group="secrets",
        settable=False,
        doc="HMAC key of cursors; generated once into the data dir's secrets/api-secret-key (0600), never in the repo",
    )
    tls_cert: str | None = None  # PEM server certificate (the secure profile: the stack's, secrets/tls/server.pem)
    tls_key: str | None = None
    secure_cookies: bool = setting(
        False, group="sessions", doc="mark the session cookie Secure (sent over HTTPS only); on with TLS"
    )
    session_cookie: str = setting("fleetsense_session", group="sessions", doc="the session cookie's name")
    login_attempts: int = setting(
        5,
        least=1,
        most=100,
        group="logins",
        doc="failed logins per username, and per client address, before the brake holds further tries back",
    )
    login_window_s: float = setting(
        900.0, least=1, most=86_400, unit="s", group="logins", doc="how long a failed login counts against the brake"
    )
    login_backoff_s: float = setting(
        1.0,
        least=0.01,
        most=60,
        unit="s",
        group="logins",
        doc="the first hold-back once the attempts are used; it doubles with each further failure",
    )
    login_backoff_max_s: float = setting(
        900.0, least=1, most=86_400, unit="s", group="logins", doc="the longest hold-back"
    )
    argon2_time_cost: int = setting(
        3, least=1, most=20, group="passwords", doc="argon2id passes (RFC 9106's second recommendation: 3)"
    )
    argon2_memory_kib: int = setting(
        65_536,
        least=8_192,
        most=1_048_576,
        unit="KiB",
        group="passwords",
        doc="argon2id memory per hash (64 MiB: RFC 9106's low-memory profile); what makes a GPU guess costly",
    )
    argon2_parallelism: int = setting(4, least=1, most=16, group="passwords", doc="argon2id lanes")
    # Retries, timeouts and allowed addresses of webhook deliveries (service/webhook_settings.py).
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    hash_concurrency: int = setting(
        2,
        least=1,
        most=64,
        group="passwords",
        doc="password hashes computed at once (each takes argon2_memory_kib): a login flood queues, never "
        "exhausts memory",
    )

    def __post_init__(self) -> None:
        check(self, what="serve setting")
        if self.profile == "dev" and not is_loopback(self.host):
            raise ConfigError(
                f"the dev profile serves plain HTTP, so it listens on loopback only, not {self.host!r}",
                hint="leave --host out (127.0.0.1), or run the stack with --profile secure to serve TLS",
            )
        if self.profile == "secure" and not (self.tls_cert and self.tls_key):
            raise ConfigError(
                "the secure profile serves TLS only, and no certificate and key were given",
                hint="`fleetsense --profile secure serve` takes the stack's (secrets/tls/server.pem)",
            )
        if self.secret_key and len(self.secret_key) < SECRET_KEY_MIN_CHARS:
            raise ConfigError(
                f"the secret key has {len(self.secret_key)} characters; it needs at least {SECRET_KEY_MIN_CHARS}",
                hint="remove <data dir>/secrets/api-secret-key: the next start generates a new one",
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def __repr__(self) -> str:  # never let the secret key reach a log line
        return f"ServeSettings(host={self.host!r}, port={self.port}, profile={self.profile!r}, secret_key='***')"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
