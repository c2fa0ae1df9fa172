"""The webhook routes fuzzed (hypothesis) over an in-memory registry: whatever an admin sends, the answer is never a
5xx; a webhook is created only from an http(s) URL with a host and known kinds, and its secret is never listed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
from fleetsense.service import routes_webhooks
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.roles import Principal, Role
from fleetsense.service.webhooks import Attempt, Webhook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsense.event_kinds import EVENT_KINDS


@dataclass
class MemoryRegistry:
    hooks: dict[str, Webhook] = field(default_factory=dict)

    async def webhooks(self) -> list[Webhook]:
        return list(self.hooks.values())

    async def get(self, webhook_id: str) -> Webhook | None:
        return self.hooks.get(webhook_id)

    async def put(self, webhook: Webhook) -> None:
        self.hooks[webhook.webhook_id] = webhook

    async def delete(self, webhook_id: str) -> None:
        self.hooks.pop(webhook_id, None)

    async def deliveries(self, webhook_id: str, day: date) -> list[Attempt]:
        return []


KNOWN = [k.key for k in EVENT_KINDS]
# Hosts that need no DNS (IP literals, some refused), schemes good and bad, and free text.
URLS = st.one_of(
    st.sampled_from(["http://127.0.0.1:9/hook", "https://10.0.0.2/x?fleet=1", "http://[::1]:8080/"]),
    st.builds(
        "{}://{}{}/{}".format,
        st.sampled_from(["http", "https", "ftp", "HTTP", "javascript", ""]),
        st.sampled_from(["127.0.0.1", "10.1.2.3", "[::1]", "169.254.169.254", "0.0.0.0", "[fe80::1]", ""]),
        st.sampled_from(["", ":8080", ":0", ":99999", ":x"]),
        st.text(max_size=20),
    ),
    st.text(max_size=60),
)
KINDS = st.one_of(
    st.lists(st.sampled_from(KNOWN), max_size=3), st.lists(st.one_of(st.sampled_from(KNOWN), st.text(max_size=15)))
)
BODIES = st.one_of(
    st.fixed_dictionaries({"url": URLS, "kinds": KINDS}),
    st.fixed_dictionaries({}, optional={"url": URLS, "kinds": KINDS, "enabled": st.booleans()}),
    st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=10)), max_size=3),
)


# Ids as a client could type them in a path (printable, no separators).
IDS = st.lists(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"), min_size=1),
    max_size=2,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(creates=st.lists(BODIES, min_size=1, max_size=4), patch=BODIES, ids=IDS)
def test_no_request_of_an_admin_is_answered_with_a_5xx(
    creates: list[dict[str, Any]], patch: dict[str, Any], ids: list[str]
) -> None:
    registry = MemoryRegistry()
    app = create_app()
    app.dependency_overrides[routes_webhooks._store] = lambda: registry

    async def admin() -> Principal:
        return Principal("ada", Role.ADMIN, "token")

    app.dependency_overrides[current_principal] = admin

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            for body in creates:
                answer = await api.post("/v1/webhooks", json=body)
                assert answer.status_code in (201, 400, 422), answer.text
                if answer.status_code == 201:
                    made = answer.json()
                    assert made["url"].lower().startswith(("http://", "https://"))
                    assert set(made["kinds"]) <= set(KNOWN)
                    assert "169.254." not in made["url"] and "fe80" not in made["url"]
                else:
                    assert answer.json()["detail"]
            targets = [*registry.hooks, *ids]
            for webhook_id in targets:
                for method, path, body in (
                    ("PATCH", f"/v1/webhooks/{webhook_id}", patch),
                    ("GET", f"/v1/webhooks/{webhook_id}", None),
                    ("GET", f"/v1/webhooks/{webhook_id}/deliveries", None),
                    ("POST", f"/v1/webhooks/{webhook_id}/secret", None),
                ):
                    answer = await api.request(method, path, json=body)
                    assert answer.status_code < 500, (method, path, answer.text)
            listed = await api.get("/v1/webhooks")
            assert listed.status_code == 200
            assert all("secret" not in w for w in listed.json())
            for webhook_id in ids:  # ("." and ".." are paths of their own: any answer but a 5xx)
                assert (await api.delete(f"/v1/webhooks/{webhook_id}")).status_code < 500, webhook_id
            for webhook_id in list(registry.hooks):
                assert (await api.delete(f"/v1/webhooks/{webhook_id}")).status_code == 204
            assert registry.hooks == {}

    asyncio.run(run())
