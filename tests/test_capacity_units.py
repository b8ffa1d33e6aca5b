"""Unit tests of the node capacity rule (kqi_services/jobs/scheduler.py node_fit_errors): a notebook
or job request that no node of its partition (of the tenant's nodes, when no partition is named)
could ever hold is refused with the numbers of the node that comes closest; one that fits a node
is left to the queue (admit), which starts it when there is room."""
from __future__ import annotations

import pytest

from kqi_services.jobs.scheduler import (Capacity, NodeRoom, NodeSize, Quota, Request, admit, node_fit_errors,
                                         node_shortfalls, node_wait_note)

NODE1 = NodeSize("node1", cpu=2.0, memory=7.63, gpu=0, partition="local")
GPU_BOX = NodeSize("gpu-box", cpu=16.0, memory=64.0, gpu=4, partition="gpu")
BIG_CPU = NodeSize("big-cpu", cpu=64.0, memory=256.0, gpu=0, partition="cpu")
SMALL_GPU = NodeSize("small-gpu", cpu=4.0, memory=16.0, gpu=1, partition="gpu")


def test_the_issue_example():
    errors = node_fit_errors(64, 512, 8, [NODE1], "local")
    where = "on the largest node of partition local (node1: cpu 2, memory 7.6 GiB, gpu 0)"
    assert errors == {
        "cpu": f"cpu 64 > 2 {where}: no node can ever hold it",
        "memory": f"memory 512 GiB > 7.6 GiB {where}: no node can ever hold it",
        "gpu": f"gpu 8 > 0 {where}: no node can ever hold it",
    }


@pytest.mark.parametrize("cpu,memory,gpu", [(2, 7.63, 0), (1, 1, 0), (0.5, 0.25, 0), (2.0, 7.0, 0)])
def test_what_fits_the_node_is_not_refused(cpu, memory, gpu):
    assert node_fit_errors(cpu, memory, gpu, [NODE1], "local") == {}
    assert node_fit_errors(cpu, memory, gpu, [NODE1], None) == {}


def test_one_resource_over_is_refused_alone():
    assert set(node_fit_errors(2.5, 1, 0, [NODE1], "local")) == {"cpu"}
    assert set(node_fit_errors(1, 8, 0, [NODE1], "local")) == {"memory"}
    assert set(node_fit_errors(1, 1, 1, [NODE1], "local")) == {"gpu"}
    assert node_fit_errors(2.5, 1, 0, [NODE1], "local")["cpu"].startswith("cpu 2.5 > 2 on")


def test_one_node_must_hold_all_of_it():
    """A request of 20 cpu with 1 GPU is over gpu-box's cpu though the partition's sum (20 cpu) would
    hold it; 32 cpu exist on big-cpu and GPUs on gpu-box, but no node has 32 cpu and a GPU."""
    nodes = [GPU_BOX, SMALL_GPU]
    assert node_fit_errors(16, 64, 4, nodes, "gpu") == {}
    errors = node_fit_errors(20, 8, 1, nodes, "gpu")
    assert set(errors) == {"cpu"}
    assert "cpu 20 > 16 on the largest node of partition gpu (gpu-box: cpu 16, memory 64 GiB, gpu 4)" in errors["cpu"]
    # no partition: every node the tenant may use, but still one node for the whole request
    assert node_fit_errors(32, 8, 1, [GPU_BOX, BIG_CPU, SMALL_GPU], None) != {}
    assert node_fit_errors(32, 8, 0, [GPU_BOX, BIG_CPU, SMALL_GPU], None) == {}


def test_the_closest_node_is_named():
    """The node with the most resources that fit, then the most cpu, memory and gpu."""
    nodes = [BIG_CPU, GPU_BOX, SMALL_GPU]
    # 32 cpu and a GPU: big-cpu fits cpu and memory (misses gpu), gpu-box fits memory and gpu (misses cpu)
    errors = node_fit_errors(32, 8, 1, nodes, None)
    assert set(errors) == {"gpu"}
    assert "(big-cpu: cpu 64, memory 256 GiB, gpu 0)" in errors["gpu"]
    assert "on the largest node this tenant may use" in errors["gpu"]
    # everything over every node: the biggest is named
    errors = node_fit_errors(128, 1024, 8, nodes, None)
    assert set(errors) == {"cpu", "memory", "gpu"}
    assert all("(big-cpu: cpu 64, memory 256 GiB, gpu 0)" in e for e in errors.values())


def test_partition_limits_the_nodes():
    nodes = [NODE1, BIG_CPU, GPU_BOX]
    assert node_fit_errors(32, 8, 0, nodes, "cpu") == {}
    errors = node_fit_errors(32, 8, 0, nodes, "gpu")
    assert set(errors) == {"cpu"} and "partition gpu (gpu-box:" in errors["cpu"]
    errors = node_fit_errors(32, 8, 0, nodes, "local")
    assert "cpu 32 > 2 on the largest node of partition local (node1:" in errors["cpu"]


def test_unknown_capacity_does_not_limit():
    unknown = NodeSize("unrecorded", cpu=None, memory=None, gpu=None, partition="p")
    assert node_fit_errors(1000, 1000, 100, [unknown], "p") == {}
    half = NodeSize("half", cpu=4.0, memory=None, gpu=None, partition="p")
    errors = node_fit_errors(8, 1000, 100, [half], "p")
    assert set(errors) == {"cpu"} and "(half: cpu 4, memory unknown, gpu unknown)" in errors["cpu"]
    # no nodes to look at (a Kubernetes install whose administrator recorded none): the backend decides
    assert node_fit_errors(1000, 1000, 100, [], None) == {}
    # a partition none of the nodes is in is the partition check's business, not this one's
    assert node_fit_errors(1000, 1000, 100, [NODE1], "elsewhere") == {}


def test_node_rows_are_read_as_sizes():
    class Row:  # a Node row's attributes
        def __init__(self, name, cpu, memory, gpu, partition):
            self.name, self.cpu, self.memory, self.gpu, self.partition = name, cpu, memory, gpu, partition

    rows = [Row("n1", 2.0, 4.0, 0, "local"), Row("n0", 0.0, 0.0, None, "local")]  # 0 cpu/memory: not recorded
    assert NodeSize.of(rows[1]) == NodeSize("n0", None, None, None, "local")
    assert node_fit_errors(1, 1, 0, rows, "local") == {}
    assert node_fit_errors(3, 1, 0, [rows[0]], "local")["cpu"].startswith("cpu 3 > 2 on the largest node")


def test_what_fits_a_node_but_not_now_waits_in_the_queue():
    """The other half of the rule: a request that passes node_fit_errors but not the free room stays
    queued (admit), with the reason, and starts once the room is there."""
    capacity = Capacity(cpu=2, memory=7.63, gpu=0)
    holder = Request(1, "t", 2, 1, 0, (1, 1))
    waiter = Request(2, "t", 1, 1, 0, (2, 2))
    assert node_fit_errors(waiter.cpu, waiter.memory, waiter.gpu, [NODE1]) == {}
    decision = admit([waiter], [holder], {}, capacity)
    assert decision.start == [] and decision.waiting[2][0] == 1
    assert "cluster capacity: 0 cpu free, this job needs 1" in decision.waiting[2][1]
    assert admit([waiter], [], {}, capacity).start == [2]


# ------------------------------------------------------------------ the nodes a capacity wait names
def room(name, partition, cpu, memory, gpu, used=(0.0, 0.0, 0)):
    return NodeRoom(name, partition, cpu, memory, gpu, *used)


def test_a_capacity_wait_names_the_node_and_what_it_lacks():
    node1 = room("node1", "local", 2.0, 7.63, 0, used=(1.0, 1.0, 0))
    assert node_wait_note(2, 1, 0, [node1], "local") == \
        "node node1 (partition local): cpu 1 free of 2, this job needs 2"
    # several resources of one node; memory in GiB, the numbers rounded
    assert node_wait_note(2, 7, 1, [node1], None) == (
        "node node1 (partition local): cpu 1 free of 2, this job needs 2 and memory 6.63 GiB free of"
        " 7.63 GiB, this job needs 7 GiB and gpu 0 free of 0, this job needs 1")
    # a node with room for all of it now: no node holds it back (the cluster capacity does)
    assert node_wait_note(1, 1, 0, [node1], "local") is None
    assert node_wait_note(1, 1, 0, [], None) is None
    # more used than the node has (an overcommitted node) shows 0 free, not a negative number
    full = room("full", "local", 2.0, None, None, used=(3.0, 0.0, 0))
    assert node_wait_note(1, 100, 9, [full], "local") == "node full (partition local): cpu 0 free of 2, this job needs 1"


def test_the_closest_nodes_of_the_partition_are_named():
    rooms = [room("gpu-a", "gpu", 16.0, 64.0, 4, used=(15.0, 8.0, 4)),   # lacks cpu and gpu
             room("gpu-b", "gpu", 16.0, 64.0, 4, used=(14.5, 8.0, 0)),   # lacks cpu (0.5 short of 2)
             room("gpu-c", "gpu", 8.0, 32.0, 1, used=(7.0, 0.0, 0)),     # lacks cpu (1 short of 2)
             room("cpu-a", "cpu", 64.0, 256.0, 0)]                        # another partition: free
    assert [r.name for r, _ in node_shortfalls(2, 4, 1, rooms, "gpu")] == ["gpu-b", "gpu-c"]
    note = node_wait_note(2, 4, 1, rooms, "gpu")
    assert note == ("node gpu-b (partition gpu): cpu 1.5 free of 16, this job needs 2; "
                    "node gpu-c (partition gpu): cpu 1 free of 8, this job needs 2")
    assert [r.name for r, _ in node_shortfalls(2, 4, 1, rooms, "gpu", most=3)] == ["gpu-b", "gpu-c", "gpu-a"]
    # without a partition every node given counts, and cpu-a has room (gpu 0 of 0 is not needed)
    assert node_wait_note(2, 4, 0, rooms, None) is None


def test_admit_appends_the_node_note_to_capacity_waits_only():
    capacity = Capacity(cpu=2, memory=7.63, gpu=0)
    holder = Request(1, "t", 1, 1, 0, (1, 1))
    big = Request(2, "t", 2, 1, 0, (2, 2), partition="local")
    after = Request(3, "t", 1, 1, 0, (3, 3))
    node1 = room("node1", "local", 2.0, 7.63, 0, used=(1.0, 1.0, 0))
    asked = []

    def note(req):
        asked.append(req.job_id)
        return node_wait_note(req.cpu, req.memory, req.gpu, [node1], req.partition)

    decision = admit([big, after], [holder], {}, capacity, note)
    assert decision.waiting[2] == (1, "cluster capacity: 1 cpu free, this job needs 2; "
                                      "node node1 (partition local): cpu 1 free of 2, this job needs 2")
    assert decision.waiting[3][1].endswith("node node1 (partition local): cpu 1 free of 2, this job needs 2")
    # a quota wait is the quota's: the nodes are not asked
    asked.clear()
    decision = admit([big], [holder], {"t": Quota(cpu=2)}, capacity, note)
    assert decision.waiting[2][1].startswith("tenant quota: cpu 1 in use of 2") and "node" not in decision.waiting[2][1]
    assert asked == []
    # without the note (or when it names nothing) the reason is the old one
    assert admit([big], [holder], {}, capacity).waiting[2][1] == "cluster capacity: 1 cpu free, this job needs 2"
    assert admit([big], [holder], {}, capacity, lambda req: None).waiting[2][1] == \
        "cluster capacity: 1 cpu free, this job needs 2"
