"""The demo's judgement, on records made by hand: what passes, what fails, and the exit code."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from demo.records import (
    CatchUpRecord,
    DemoReport,
    Failover,
    PersistentRecord,
    PymoRecord,
    ReadRecord,
    ReplicaRecord,
    SchemaRecord,
    WritesRecord,
    ms,
)
from demo.summary import (
    Invariant,
    count_differences,
    evaluate,
    exit_code,
    figures,
    once_in_order,
)

IDS = tuple(f"e{i}" for i in range(10))


def healthy() -> DemoReport:
    """A report where everything the demo promises held."""
    return DemoReport(
        pymo=PymoRecord(2.0, 0.004, 0.003, 0.009, 0.005),
        schema=SchemaRecord("2 collection(s), 2 index(es), 1 default document(s)", True),
        writes=WritesRecord(
            attempted=13,
            acknowledged=tuple(range(10)),
            stored=tuple(range(10)),
            updates_attempted=3,
            updates_acknowledged=(0, 4, 8),
            updates_stored=(0, 4, 8),
            failovers=(
                Failover("MongoDB", "killed primary a:1", 0.40, 0.41),
                Failover("MongoDB", "killed primary b:2", 0.40, 0.42),
            ),
            planned_failovers=2,
        ),
        replica=ReplicaRecord(
            replica_size=10, collection_size=10, differences=0, changes_applied=13
        ),
        read=ReadRecord(IDS, IDS),
        catch_up=CatchUpRecord(
            IDS,
            IDS,
            leader_killed=True,
            failovers=(Failover("EventStore", "killed leader c:3", 0.5, 0.55),),
            planned_failovers=1,
        ),
        persistent=PersistentRecord(IDS, IDS, IDS),
        leaks=[],
    )


def by_name(invariants: list[Invariant]) -> dict[str, Invariant]:
    return {i.name: i for i in invariants}


def failing(report: DemoReport) -> list[Invariant]:
    return [i for i in evaluate(report) if not i.holds]


def test_a_healthy_report_holds_everywhere_and_exits_0() -> None:
    invariants = evaluate(healthy())
    assert len(invariants) == 12
    assert all(i.holds for i in invariants), [i for i in invariants if not i.holds]
    assert exit_code(invariants) == 0
    found = by_name(invariants)
    lost = found["mongomancy: no acknowledged write lost or duplicated"]
    assert lost.measured.startswith("0 lost, 0 duplicated (10 orders stored, 3 paid)")
    assert found["failover times measured"].measured == (
        "MongoDB: 410 ms; MongoDB: 420 ms; EventStore: 550 ms"
    )


def test_a_lost_write_fails_and_exits_1() -> None:
    report = healthy()
    assert report.writes is not None
    report.writes = replace(report.writes, stored=tuple(range(9)))  # order 9 acknowledged, gone
    (bad,) = failing(report)
    assert bad.name == "mongomancy: no acknowledged write lost or duplicated"
    assert bad.measured.startswith("1 lost, 0 duplicated")
    assert exit_code(evaluate(report)) == 1


def test_a_lost_update_counts_as_a_lost_write() -> None:
    report = healthy()
    assert report.writes is not None
    report.writes = replace(report.writes, updates_stored=(0, 4))
    (bad,) = failing(report)
    assert bad.measured.startswith("1 lost, 0 duplicated")


def test_a_write_applied_twice_fails() -> None:
    report = healthy()
    assert report.writes is not None
    report.writes = replace(report.writes, stored=(*range(10), 3))
    (bad,) = failing(report)
    assert bad.measured.startswith("0 lost, 1 duplicated")
    assert exit_code(evaluate(report)) == 1


def test_an_unacknowledged_write_fails_the_acknowledgement_invariant() -> None:
    report = healthy()
    assert report.writes is not None
    report.writes = replace(report.writes, acknowledged=tuple(range(9)))  # 9 raised
    (bad,) = failing(report)
    assert bad.name == "mongomancy: every write acknowledged through the failovers"
    assert bad.measured == "13 attempted, 12 acknowledged"


def test_a_replica_that_differs_fails() -> None:
    report = healthy()
    report.replica = ReplicaRecord(10, 10, differences=1, changes_applied=13)
    (bad,) = failing(report)
    assert bad.name == "mongo_observer: the live replica equals the collection"
    assert "1 differ" in bad.measured
    assert exit_code(evaluate(report)) == 1


def test_a_replica_missing_documents_fails_even_without_differences_counted() -> None:
    report = healthy()
    report.replica = ReplicaRecord(9, 10, differences=0, changes_applied=13)
    assert [i.name for i in failing(report)] == [
        "mongo_observer: the live replica equals the collection"
    ]


def test_a_duplicated_catch_up_event_fails() -> None:
    report = healthy()
    assert report.catch_up is not None
    report.catch_up = replace(report.catch_up, received=(*IDS[:5], IDS[4], *IDS[5:]))
    (bad,) = failing(report)
    assert bad.name.startswith("photonpump: catch-up subscription got every event exactly once")
    assert bad.measured == "10 published, 11 received, 0 missing, 1 duplicated, in order"
    assert exit_code(evaluate(report)) == 1


def test_a_read_out_of_order_or_short_fails() -> None:
    report = healthy()
    report.read = ReadRecord(IDS, (IDS[1], IDS[0], *IDS[2:]))
    (bad,) = failing(report)
    assert bad.measured.endswith("OUT OF ORDER")
    report.read = ReadRecord(IDS, IDS[:-1])
    (bad,) = failing(report)
    assert "1 missing" in bad.measured


def test_a_persistent_redelivery_is_reported_not_failed() -> None:
    report = healthy()
    report.persistent = PersistentRecord(IDS, (*IDS, IDS[3]), (*IDS, IDS[3]))
    assert exit_code(evaluate(report)) == 0
    found = by_name(evaluate(report))["photonpump: persistent subscription acked every event"]
    assert "1 redelivered" in found.measured


def test_a_persistent_event_never_acked_fails() -> None:
    report = healthy()
    report.persistent = PersistentRecord(IDS, IDS, IDS[:-2])
    (bad,) = failing(report)
    assert "2 never acked" in bad.measured


def test_pymo_slower_than_its_bound_or_without_a_client_fails() -> None:
    report = healthy()
    report.pymo = PymoRecord(2.0, 2.5, 0.003, 0.009, 0.005)
    assert [i.name for i in failing(report)] == ["pymo: a dead seed list fails within its bound"]
    report.pymo = PymoRecord(2.0, None, 0.003, 0.009, None)  # no error; no client
    assert [i.name for i in failing(report)] == [
        "pymo: a dead seed list fails within its bound",
        "pymo: a healthy set returns a client",
    ]


def test_a_step_that_did_not_finish_fails_what_it_should_have_measured() -> None:
    report = healthy()
    report.replica = None
    report.errors.append("MongoDB: TimeoutError: ")
    names = [i.name for i in failing(report)]
    assert names == [
        "mongo_observer: the live replica equals the collection",
        "every step ran to completion",
    ]
    assert by_name(evaluate(report))[names[0]].measured.startswith("not measured")


def test_failover_times_must_be_measured_for_every_fault_performed() -> None:
    report = healthy()
    assert report.writes is not None
    unmeasured = Failover("MongoDB", "killed primary a:1", None, None)
    report.writes = replace(report.writes, failovers=(unmeasured, report.writes.failovers[1]))
    assert [i.name for i in failing(report)] == ["failover times measured"]
    report.writes = replace(report.writes, failovers=report.writes.failovers[1:])  # one missing
    assert [i.name for i in failing(report)] == ["failover times measured"]


def test_a_fault_a_real_deployment_refused_or_skipped_is_shown_not_failed() -> None:
    report = healthy()
    report.catch_up = CatchUpRecord(
        IDS,
        IDS,
        leader_killed=False,
        failovers=(Failover("EventStore", "leader kill", skipped="a real cluster"),),
        planned_failovers=1,
    )
    found = by_name(evaluate(report))
    assert exit_code(list(found.values())) == 0
    assert "EventStore: not performed (a real cluster)" in found["failover times measured"].measured
    assert (
        "photonpump: catch-up subscription got every event exactly once (no leader kill)" in found
    )


def test_leaks_fail_and_are_not_judged_when_not_checked() -> None:
    report = healthy()
    report.leaks = ["thread pymongo_server_monitor_thread"]
    (bad,) = failing(report)
    assert bad.measured == "thread pymongo_server_monitor_thread"
    report.leaks = None
    assert len(evaluate(report)) == 11


def test_nothing_to_judge_is_not_a_success() -> None:
    assert exit_code([]) == 1


def test_figures_carry_the_numbers() -> None:
    rows = dict(figures(healthy()))
    assert rows["MongoDB writes"] == "attempted 13, acknowledged 13, lost 0, duplicated 0"
    assert rows["EventStore events (catch-up)"] == "published 10, received 10, duplicated 0"
    assert rows["failover 3"] == (
        "EventStore: killed leader c:3: new leader seen after 500 ms, first acknowledged write "
        "after 550 ms"
    )


@pytest.mark.parametrize(
    ("replica", "collection", "expected"),
    [
        ([{"_id": 1, "a": 1}], [{"_id": 1, "a": 1}], 0),
        ([{"_id": 1, "a": 1}], [{"_id": 1, "a": 2}], 1),  # a field differs
        ([], [{"_id": 1}], 1),  # missing from the replica
        ([{"_id": 1}, {"_id": 2}], [{"_id": 1}], 1),  # only in the replica
    ],
)
def test_count_differences(
    replica: list[dict[str, Any]], collection: list[dict[str, Any]], expected: int
) -> None:
    assert count_differences(replica, collection) == expected


def test_once_in_order_and_ms() -> None:
    assert once_in_order(["a", "b"], ["a", "b"]) == (
        "2 published, 2 received, 0 missing, 0 duplicated, in order"
    )
    assert ms(None) == "—"
    assert ms(0.0125) == "12 ms"
