"""Models of the resource routes: KAMONOHASHI's resource monitor (/admin/resource/*,
/tenant/resource/*: nodes, tenants, containers, their logs and events, the resource history
CSV) and the KQI additions: what the caller can use now (/tenant/resource/available) and the
usage ledger's report (/admin/resource/usage, /tenant/resource/usage).

Field names of the monitor are KAMONOHASHI's (ContainerDetailsOutputModel,
NodeResourceOutputModel, TenantResourceOutputModel, HistoryMetadataOutputModel); memory is
in GiB, seconds of memory are GiB-seconds.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .core import ApiModel, Id
from .misc import Count

Kind = Literal["training", "inference", "preprocessing", "notebook", "tensorboard"]


class ContainerOutput(ApiModel):
    """A container that holds resources: a running job, notebook server or TensorBoard."""

    name: str
    """Its name (training-12, notebook-3, tensorboard-12 ...)."""
    containerType: Literal["Training", "Inferencing", "Preprocessing", "Notebook", "TensorBoard"]
    kind: Kind
    """KQI: the kind in the API's own words."""
    id: Id
    """KQI: the job's, notebook's or (TensorBoard) training's id."""
    tenantId: Id
    tenantName: str | None
    displayName: str | None
    createdBy: str | None
    displayNameCreatedBy: str | None
    cpu: float
    memory: float
    gpu: int
    status: str
    statusType: str
    conditionNote: str | None
    nodeName: str | None
    startedAt: str | None
    page: str
    """KQI: its page under the service's web UI (relative)."""


class NodeResourceOutput(ApiModel):
    name: str
    memo: str | None
    partition: str | None
    accessLevel: int
    tensorBoardEnabled: bool
    allocatableCpu: float | None
    allocatableMemory: float | None
    allocatableGpu: int | None
    assignedCpu: float
    assignedMemory: float
    assignedGpu: int
    freeCpu: float | None
    """KQI: allocatable - assigned (null when the node's size is not recorded)."""
    freeMemory: float | None
    freeGpu: int | None
    cpuInfo: str
    memoryInfo: str
    gpuInfo: str
    containerResourceList: list[ContainerOutput]


class TenantResourceOutput(ApiModel):
    id: Id
    name: str
    displayName: str
    allocatableCpu: float
    """The tenant quota (0: no limit)."""
    allocatableMemory: float
    allocatableGpu: int
    assignedCpu: float
    assignedMemory: float
    assignedGpu: int
    cpuInfo: str
    memoryInfo: str
    gpuInfo: str
    containerResourceList: list[ContainerOutput]


class ContainerTypeOutput(ApiModel):
    id: int
    name: str


class EventOutput(ApiModel):
    timestamp: str | None
    type: str
    reason: str
    message: str


class HistoryMetadataOutput(ApiModel):
    count: int
    startDate: str | None
    endDate: str | None


class HistoryDataQuery(ApiModel):
    startDate: str | None = Field(None, max_length=40)
    """The first day (YYYY-MM-DD)."""
    endDate: str | None = Field(None, max_length=40)
    """The last day (YYYY-MM-DD)."""
    withHeader: str | None = Field(None, max_length=8)
    """true: the first line names the columns."""


class HistoryDeleteInput(ApiModel):
    endDate: str | None = Field(None, max_length=40)
    """Remove the samples up to this day (all when left out)."""


# ------------------------------------------------------------------------ what can I use
class Triple(ApiModel):
    cpu: float
    memory: float
    gpu: int


class FreeTriple(ApiModel):
    cpu: float | None
    memory: float | None
    gpu: float | None


class QueuedOutput(Triple):
    count: int


class NodeFreeOutput(ApiModel):
    name: str
    allocatableCpu: float | None
    allocatableMemory: float | None
    allocatableGpu: int | None
    freeCpu: float | None
    freeMemory: float | None
    freeGpu: int | None


class PartitionOutput(ApiModel):
    partition: str | None
    nodes: list[NodeFreeOutput]


class CheckRequestOutput(ApiModel):
    cpu: float
    memory: float
    gpu: int
    partition: str | None


class CheckOutput(ApiModel):
    request: CheckRequestOutput
    outcome: Literal["startsNow", "waits", "never"]
    reasons: list[str]
    advice: str | None


class AvailableQuery(ApiModel):
    cpu: float | None = Field(None, ge=0, le=1e6)
    """Check a request of this many cores (with memory and gpu)."""
    memory: float | None = Field(None, ge=0, le=1e9)
    gpu: int | None = Field(None, ge=0, le=2**31 - 1)
    partition: str | None = Field(None, max_length=128)


class AvailableOutput(ApiModel):
    """What the caller can start now in the current tenant."""

    tenantId: Id
    tenantName: str
    userName: str
    quota: Triple
    """The tenant quota (0: no limit)."""
    used: Triple
    """What the tenant's running jobs hold (counted against the quota)."""
    free: FreeTriple
    """quota - used (null: no limit)."""
    usedByMe: Triple
    queued: QueuedOutput
    capacity: Triple
    """What the job backend hands out in all."""
    capacityFree: Triple
    startsNowAtMost: Triple
    """The largest job that would start now (the smaller of the free quota and the free capacity)."""
    partitions: list[PartitionOutput]
    containers: list[ContainerOutput]
    check: CheckOutput | None
    """For a request (cpu, memory, gpu, partition in the query): whether it would start now."""


# ------------------------------------------------------------------------ usage ledger
class UsageQuery(ApiModel):
    startDate: str | None = Field(None, max_length=40)
    """The first day (YYYY-MM-DD, UTC); 29 days before endDate when left out."""
    endDate: str | None = Field(None, max_length=40)
    """The last day (YYYY-MM-DD, UTC); today when left out."""
    tenantId: int | None = Field(None, ge=0, le=2**53)
    userName: str | None = Field(None, max_length=255)
    kind: Kind | None = None
    groupBy: str | None = Field(None, max_length=64)
    """Comma-separated: tenant, user, kind (all three when left out)."""
    chartBy: Literal["tenant", "user", "kind"] | None = None
    """The daily series' groups (tenant when left out)."""


class UsageRunOutput(ApiModel):
    tenantId: int
    tenantName: str
    userName: str
    kind: Kind
    id: int
    containerName: str
    node: str | None
    cpu: float
    memory: float
    gpu: int
    startedAt: str
    endedAt: str | None
    seconds: float
    cpuSeconds: float
    memorySeconds: float
    gpuSeconds: float


class UsageTotalOutput(ApiModel):
    tenantId: int | None = None
    tenantName: str | None = None
    userName: str | None = None
    kind: Kind | None = None
    runs: int
    seconds: float
    cpuSeconds: float
    memorySeconds: float
    gpuSeconds: float


class UsageDayOutput(ApiModel):
    date: str
    group: str
    cpuSeconds: float
    memorySeconds: float
    gpuSeconds: float


class StorageUsageOutput(ApiModel):
    tenantId: int
    tenantName: str
    displayName: str
    dataBytes: int
    outputBytes: int
    totalBytes: int


class UsageReportOutput(ApiModel):
    startDate: str
    endDate: str
    groupBy: list[str]
    totals: list[UsageTotalOutput]
    runs: list[UsageRunOutput]
    daily: list[UsageDayOutput]
    storage: list[StorageUsageOutput]


__all__ = [name for name in dir() if name.endswith(("Output", "Input", "Query"))] + ["Count"]
