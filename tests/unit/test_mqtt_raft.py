"""Reading `ra:members` answers for the MQTT client-id Raft cluster (fleetsense/cluster/mqtt_raft.py)."""

from __future__ import annotations

from fleetsense.cluster.mqtt_raft import parse_members


def test_the_members_are_read_from_the_list_and_not_from_the_leader() -> None:
    answer = (
        "{ok,[{mqtt_node,fleetsense@rmq1},\n     {mqtt_node,fleetsense@rmq2},\n     {mqtt_node,fleetsense@rmq3}],\n"
        "    {mqtt_node,fleetsense@rmq1}}\n"
    )
    assert parse_members(answer) == ["fleetsense@rmq1", "fleetsense@rmq2", "fleetsense@rmq3"]
    # The CI case: rmq3's join was refused; the leader named after the list does not count as a member.
    assert parse_members(
        "{ok,[{mqtt_node,fleetsense@rmq1},{mqtt_node,fleetsense@rmq2}],{mqtt_node,fleetsense@rmq2}}"
    ) == [
        "fleetsense@rmq1",
        "fleetsense@rmq2",
    ]
    assert parse_members("{ok,[{mqtt_node,'fleetsense@rmq-a'}],{mqtt_node,'fleetsense@rmq-a'}}") == ["fleetsense@rmq-a"]


def test_an_answer_without_a_leader_is_none() -> None:
    assert parse_members("{timeout,{mqtt_node,fleetsense@rmq2}}\n") is None
    assert parse_members("") is None
    assert parse_members("{error,noproc}") is None
