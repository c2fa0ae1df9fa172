"""The webhooks' settings: how deliveries are retried, how long one may take, how many wait per webhook, and which
addresses a webhook may point at (ServeSettings.webhooks; tests shorten the retries)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetsense.service.webhook_retry import RetryPolicy

from fleetsense.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 5.0  # one attempt, connect to last byte: a slow receiver's attempt fails after this
    queue_size: int = 1_000  # events waiting per webhook; beyond, new ones are dropped (and counted, and logged)
    refresh_s: float = 10.0  # the registry is re-read this often (another API process may have changed it)
    allow_link_local: bool = False  # 169.254.0.0/16, fe80::/10: cloud metadata services live there (SSRF)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.queue_size < 1 or self.refresh_s <= 0:
            raise ConfigError(
                f"webhook settings: timeout_s {self.timeout_s}, queue_size {self.queue_size} and refresh_s"
                f" {self.refresh_s} must all be positive",
                hint="docs/service.md, Webhooks",
            )
