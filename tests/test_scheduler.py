"""The scheduler's admit(): FIFO within a tenant, fairness across tenants, tenant quotas,
backend capacity, queue positions and the reasons jobs wait. Pure functions, no platform."""
from __future__ import annotations

import random

from kqi_services.jobs.scheduler import Capacity, Quota, Request, admit

BIG = Capacity(cpu=100, memory=1000, gpu=8)


def req(job_id, tenant, cpu=1.0, memory=1.0, gpu=0, t=None):
    return Request(job_id, tenant, cpu, memory, gpu, (t if t is not None else job_id, job_id))


def test_nothing_queued_nothing_decided():
    d = admit([], [req(1, "a")], {}, BIG)
    assert d.start == [] and d.waiting == {}


def test_fifo_within_a_tenant_in_submission_order_not_list_order():
    queued = [req(3, "a", t=30), req(1, "a", t=10), req(2, "a", t=20), req(4, "a", t=40)]
    d = admit(queued, [], {}, Capacity(cpu=2, memory=100, gpu=0))
    assert d.start == [1, 2]
    assert d.waiting[3][0] == 1 and d.waiting[4][0] == 2
    assert d.waiting[3][1].startswith("cluster capacity: 0 cpu free, this job needs 1")
    assert d.waiting[4][1] == ("behind earlier jobs of the tenant; the first one waits for "
                               "cluster capacity: 0 cpu free, this job needs 1")
    # equal submission times: the id decides
    d = admit([req(8, "a", t=5), req(7, "a", t=5)], [], {}, Capacity(cpu=1, memory=100, gpu=0))
    assert d.start == [7] and d.waiting == {8: (1, d.waiting[8][1])}


def test_no_overtaking_inside_a_tenant_but_other_tenants_go_on():
    # a's big job does not fit: a's small job behind it waits too, b's small job starts
    queued = [req(1, "a", cpu=4, t=1), req(2, "a", cpu=1, t=2), req(3, "b", cpu=1, t=3)]
    d = admit(queued, [], {}, Capacity(cpu=2, memory=100, gpu=0))
    assert d.start == [3]
    assert d.waiting[1] == (1, "cluster capacity: 2 cpu free, this job needs 4")
    assert d.waiting[2][0] == 2 and "behind earlier jobs of the tenant" in d.waiting[2][1]


def test_fair_across_tenants():
    # a submitted four jobs before b submitted four: with room for four, each gets two
    queued = [req(i, "a", t=i) for i in range(1, 5)] + [req(i, "b", t=i) for i in range(5, 9)]
    d = admit(queued, [], {}, Capacity(cpu=4, memory=100, gpu=0))
    assert sorted(d.start) == [1, 2, 5, 6]
    assert d.start[:2] == [1, 5]  # the older head first, then the tenant that uses less
    assert {j: p for j, (p, _) in d.waiting.items()} == {3: 1, 4: 2, 7: 1, 8: 2}

    # the tenant that already uses more waits, even with the older job
    d = admit([req(1, "a", t=1), req(2, "b", t=2)], [req(90, "a", cpu=3)], {}, Capacity(cpu=4, memory=100, gpu=0))
    assert d.start == [2]
    assert d.waiting == {1: (1, "cluster capacity: 0 cpu free, this job needs 1")}

    # three tenants, one slot each round: every tenant gets one before anyone gets a second
    queued = [req(i, tenant, t=i) for i, tenant in enumerate("aaabbbccc", start=1)]
    d = admit(queued, [], {}, Capacity(cpu=3, memory=100, gpu=0))
    assert sorted(d.start) == [1, 4, 7]


def test_fairness_counts_memory_share_too():
    # a runs one job with most of the memory: b goes first although a's job is older
    d = admit([req(1, "a", memory=1, t=1), req(2, "b", memory=1, t=2)], [req(90, "a", cpu=0.1, memory=80)], {},
              Capacity(cpu=10, memory=81, gpu=0))
    assert d.start == [2]
    assert d.waiting[1][1] == "cluster capacity: 0 memory free, this job needs 1"


def test_tenant_quota_cpu_memory_gpu():
    quotas = {"a": Quota(cpu=2)}
    d = admit([req(1, "a", t=1), req(2, "a", t=2), req(3, "a", t=3)], [], quotas, BIG)
    assert d.start == [1, 2]
    assert d.waiting == {3: (1, "tenant quota: cpu 2 in use of 2, this job needs 1")}
    # a running job counts against the quota
    d = admit([req(2, "a")], [req(1, "a", cpu=1.5)], quotas, BIG)
    assert d.start == [] and d.waiting[2][1] == "tenant quota: cpu 1.5 in use of 2, this job needs 1"
    # the quota is the tenant's own: b is not limited by a's quota, a's running jobs use b's nothing
    d = admit([req(2, "a", t=2), req(3, "b", cpu=5, t=3)], [req(1, "a", cpu=2)], quotas, BIG)
    assert d.start == [3] and d.waiting[2][0] == 1

    d = admit([req(1, "a", memory=6), req(2, "a", memory=6)], [], {"a": Quota(memory=10)}, BIG)
    assert d.start == [1] and d.waiting[2][1] == "tenant quota: memory 6 in use of 10, this job needs 6"
    d = admit([req(1, "a", gpu=1), req(2, "a", gpu=1)], [], {"a": Quota(gpu=1)}, BIG)
    assert d.start == [1] and d.waiting[2][1] == "tenant quota: gpu 1 in use of 1, this job needs 1"
    # no limit: None or 0
    d = admit([req(1, "a", cpu=50)], [], {"a": Quota(cpu=None, memory=0, gpu=0)}, BIG)
    assert d.start == [1]


def test_quota_is_named_before_capacity():
    d = admit([req(1, "a"), req(2, "a"), req(3, "a")], [], {"a": Quota(cpu=2)}, Capacity(cpu=2, memory=100, gpu=0))
    assert d.start == [1, 2]
    assert d.waiting[3][1].startswith("tenant quota: cpu")


def test_capacity_memory_and_gpu():
    d = admit([req(1, "a", gpu=1)], [], {}, Capacity(cpu=8, memory=100, gpu=0))
    assert d.start == [] and d.waiting[1] == (1, "cluster capacity: 0 gpu free, this job needs 1")
    d = admit([req(1, "a", memory=30), req(2, "b", memory=30)], [req(9, "c", memory=50)], {},
              Capacity(cpu=8, memory=100, gpu=0))
    assert d.start == [1] and d.waiting[2] == (1, "cluster capacity: 20 memory free, this job needs 30")
    # fractional cpus add up exactly enough
    d = admit([req(i, "a", cpu=0.1, t=i) for i in range(1, 11)], [], {}, Capacity(cpu=1.0, memory=100, gpu=0))
    assert len(d.start) == 10


def test_positions_are_per_tenant_and_complete():
    rng = random.Random(4)
    queued = [req(i, rng.choice("abcde"), cpu=rng.choice([1, 2, 4]), t=rng.random()) for i in range(1, 301)]
    quotas = {"a": Quota(cpu=3), "c": Quota(cpu=8)}
    d = admit(queued, [], quotas, Capacity(cpu=24, memory=10000, gpu=0))
    started, waiting = set(d.start), set(d.waiting)
    assert started | waiting == {r.job_id for r in queued} and not started & waiting
    for tenant in "abcde":
        mine = sorted((r for r in queued if r.tenant == tenant), key=lambda r: r.order)
        # started jobs are a prefix of the tenant's queue; positions then count 1, 2, 3, ...
        ids = [r.job_id for r in mine]
        n = sum(1 for i in ids if i in started)
        assert set(ids[:n]) <= started and not set(ids[n:]) & started
        assert [d.waiting[i][0] for i in ids[n:]] == list(range(1, len(ids) - n + 1))
    use = {t: sum(r.cpu for r in queued if r.job_id in started and r.tenant == t) for t in "abcde"}
    assert use["a"] <= 3 and use["c"] <= 8 and sum(use.values()) <= 24
