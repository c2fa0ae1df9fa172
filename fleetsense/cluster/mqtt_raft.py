"""The MQTT plugin's client-id Raft cluster (`mqtt_node`) on RabbitMQ 3.10: every broker node must be a member.

Why this exists: a starting node's MQTT plugin asks the cluster to add it once and ignores a refusal. When two nodes
join at once (rmq2 and rmq3 start together), one join can be refused (`cluster_change_not_permitted`, seen in CI
2026-12-06 17:12) and that node stays out for good. The Raft cluster then has two members; cut one off and the other
alone elects no leader, and the cut-off node, restarting after the heal, waits for that leader before it starts its
own member (`mqtt_node:join_peers`: ra:members with a 100 s timeout, retried every 5 s up to 100 times). Its broker
never finished booting (120 s after the heal). `ensure_members` adds every missing node after the brokers start.
RabbitMQ 3.11+ restart the member first; 4.x has no client-id Raft cluster.
"""

from __future__ import annotations

import re
import time

from fleetsense.cluster import netns
from fleetsense.cluster.plan import ClusterPlan, Host, Role
from fleetsense.errors import StackError

RAFT_CLUSTER = "mqtt_node"
_MEMBER = re.compile(r"\{\s*mqtt_node\s*,\s*'?([^,}'\s]+)'?\s*\}")


def parse_members(eval_output: str) -> list[str] | None:
    """The member nodes in `ra:members(...)`'s answer `{ok, [Members], Leader}`; None for anything else (a timeout:
    no leader answered)."""
    text = eval_output.strip()
    if not text.startswith("{ok,"):
        return None
    listed = text[len("{ok,") :].split("]", 1)[0]
    return sorted(_MEMBER.findall(listed))


def _eval(plan: ClusterPlan, host: Host, expression: str, *, timeout_s: float = 30.0) -> str:
    from fleetsense.cluster.brokers import BrokerNode, ctl_env
    from fleetsense.stack.rabbitmq import RABBITMQ_BIN

    node = BrokerNode(plan, host)
    done = netns.run(
        host,
        [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.rabbit.node, "eval", expression],
        env=ctl_env(node.rabbit.env()),
        timeout_s=timeout_s,
        what=f"rabbitmqctl eval on {host.name}",
    )
    return str(done.stdout)


def members(plan: ClusterPlan, via: Host) -> list[str] | None:
    return parse_members(_eval(plan, via, f"ra:members({{{RAFT_CLUSTER}, node()}}, 10000)."))


def ensure_members(plan: ClusterPlan, *, timeout_s: float = 90.0) -> list[str]:
    """Add every broker node missing from the MQTT Raft cluster (asked through the first broker); returns the nodes
    added. Raises when the cluster still lacks one after `timeout_s`."""
    from fleetsense.cluster.brokers import node_name

    hosts = plan.hosts(Role.BROKER)
    wanted = [node_name(host) for host in hosts]
    added: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        found = members(plan, hosts[0])
        missing = [node for node in wanted if found is not None and node not in found]
        if found is not None and not missing:
            return added
        if time.monotonic() > deadline:
            raise StackError(
                f"the MQTT client-id Raft cluster ({RAFT_CLUSTER}) lacks {missing or wanted} after {timeout_s:.0f} s"
                f" (members: {found})",
                hint="a broker cut off later may then never finish booting; restart the missing node's broker",
            )
        for node in missing:
            _eval(plan, hosts[0], f"ra:add_member({{{RAFT_CLUSTER}, node()}}, {{{RAFT_CLUSTER}, '{node}'}}).")
            if node not in added:
                added.append(node)
        time.sleep(1.0)
