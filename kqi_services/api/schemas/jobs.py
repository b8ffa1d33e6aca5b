"""Jobs: training (/training), inference (/inferences), preprocessing (/preprocessings) and the
routes they share (files, container files, logs, tags, halt, complete), TensorBoard."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .core import ApiModel, DateFilter, Id, Name, NumberFilter, QueryBool, Required, Text, Timestamp, pattern_message
from .data import AddFileInput, FileName, Tag
from .datasets import DataSetIndexOutput

JOB_NAME_PATTERN = pattern_message(r"^\s*[a-z0-9-]{1,30}\s*$",
                                   "lower-case letters, digits and '-', at most 30 characters")
#: a job's name: lower-case letters, digits and '-', at most 30 characters
JobName = Annotated[str, Field(min_length=1, pattern=JOB_NAME_PATTERN)]
#: an id, or its digits as a string (the official CLI sends `-pid 3` as "3")
DIGITS_PATTERN = pattern_message(r"^\s*[0-9]{1,15}\s*$", "must be a whole number")
IdOrDigits = Id | Annotated[str, Field(pattern=DIGITS_PATTERN)]
Port = Annotated[int, Field(ge=1, le=65535)]
#: environment variables of the job: names to values (numbers and booleans are written as text)
ENV_NAME_PATTERN = pattern_message(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", "is not a valid environment variable name")
EnvOptions = dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)], Text() | int | float | bool | None]
Resource = Annotated[float, Field(ge=0)]
GpuCount = Annotated[int, Field(ge=0, le=2**31 - 1)]


# ------------------------------------------------------------------------ shared parts
class JobContainerImageInput(ApiModel):
    registryId: Id | None = None
    """A registry of the tenant (the tenant's default when left out)."""
    image: Required(512)
    tag: Required(256)


class JobGitModelInput(ApiModel):
    gitId: Id | None = None
    """A git server of the tenant (the tenant's default when left out)."""
    owner: Required(100)
    repository: Required(100)
    branch: Text(256) | None = None
    commitId: Text(40) | None = None
    """A commit (the branch's head when left out)."""


class JobContainerImageOutput(ApiModel):
    registryId: Id | None
    registryName: str | None
    image: str | None
    tag: str | None
    url: str | None


class JobGitModelOutput(ApiModel):
    gitId: Id | None
    owner: str | None
    repository: str | None
    branch: str | None
    commitId: str | None
    url: str | None


class JobOptionOutput(ApiModel):
    key: str
    value: str


class JobNodePortOutput(ApiModel):
    key: str
    value: int
    url: str
    """The address of the port through the platform's proxy."""


# ------------------------------------------------------------------ training, inference
class JobCreateInput(ApiModel):
    """POST /training/run (and /inferences/run): a job from a repository's commit, an image and a dataset."""

    name: JobName
    memo: Text(4096) | None = None
    entryPoint: Required(65536)
    """The command the job runs."""
    cpu: Resource
    memory: Resource
    """GiB."""
    gpu: GpuCount
    partition: Text(128) | None = None
    zip: bool | None = None
    """Make output.zip of /kqi/output when it ends (default true)."""
    localDataSet: bool | None = None
    """Copy the dataset into the job instead of linking it (default false)."""
    options: EnvOptions | None = None
    ports: list[Port] | None = None
    """Container ports the job serves, opened through the platform's proxy while it runs."""
    tags: list[Tag] | None = None
    containerImage: JobContainerImageInput
    dataSetId: Id
    parentIds: list[IdOrDigits] | None = None
    """Trainings mounted read-only at /kqi/parent."""
    gitModel: JobGitModelInput


class InferenceCreateInput(JobCreateInput):
    inferenceIds: list[IdOrDigits] | None = None
    """Earlier inferences mounted at /kqi/inference/<id>."""


class JobEditInput(ApiModel):
    name: JobName | None = None
    memo: Text(4096) | None = None
    favorite: bool | None = None
    tags: list[Tag] | None = None


class JobSearchQuery(ApiModel):
    id: NumberFilter | None = None
    """An id or a comparison such as `>10`."""
    name: str | None = None
    parentId: Id | None = None
    parentName: str | None = None
    startedAt: DateFilter | None = None
    """A day (2026-01-31), a prefix of a time, or a comparison such as `>=2026-01-01`."""
    startedBy: str | None = None
    dataSet: str | None = None
    """Part of the dataset's name."""
    memo: str | None = None
    status: str | None = None
    entryPoint: str | None = None
    tag: list[str] = []
    tags: list[str] = []


class JobIndexOutput(ApiModel):
    id: Id
    displayId: int
    name: str
    fullName: str
    """`<id>:<name>`."""
    memo: str | None
    favorite: bool
    status: str
    statusType: str | None
    dataSet: DataSetIndexOutput | None
    entryPoint: str | None
    parentFullNameList: list[str]
    tags: list[str]
    createdBy: str | None
    createdAt: Timestamp
    modifiedBy: str | None
    modifiedAt: Timestamp


class InferenceIndexOutput(JobIndexOutput):
    outputValue: str | None
    """The first line of /kqi/output/value.txt, when the inference wrote one."""


class JobDetailsOutput(JobIndexOutput):
    key: str
    """The job's container name."""
    containerImage: JobContainerImageOutput
    gitModel: JobGitModelOutput
    options: list[JobOptionOutput]
    parents: list[JobIndexOutput]
    cpu: float
    memory: float
    gpu: int
    partition: str | None
    ports: list[int]
    nodePorts: list[JobNodePortOutput]
    zip: bool
    localDataSet: bool
    node: str | None
    startedAt: Timestamp | None
    completedAt: Timestamp | None
    waitingTime: str | None
    """h:mm:ss from queued to started."""
    executionTime: str | None
    conditionNote: str | None
    logSummary: str | None
    exitCode: int | None
    queuedAt: Timestamp
    queuePosition: int | None
    waitReason: str | None
    waitAdvice: str | None = None
    """KQI: while it waits, what would let it run (less running in the tenant, a smaller request ...)."""


class InferenceDetailsOutput(JobDetailsOutput):
    inferenceIds: list[int]
    containerName: str


class JobSimpleQuery(ApiModel):
    status: str | None = None
    """GET /<kind>/mount: the statuses to list (comma-separated; finished and running by default)."""


class JobSimpleOutput(ApiModel):
    id: Id
    displayId: int
    name: str
    fullName: str
    status: str
    memo: str | None
    favorite: bool
    createdBy: str | None
    createdAt: Timestamp
    modifiedBy: str | None
    modifiedAt: Timestamp


class JobFilesQuery(ApiModel):
    withUrl: QueryBool = False
    """When true, each file carries a signed download URL."""


class JobFileOutput(ApiModel):
    id: Id
    """The job's id."""
    fileId: Id
    fileName: str
    isLocked: bool
    """Made by the platform (the log, output.zip): it cannot be deleted."""
    url: str | None
    size: int


class JobAddFileInput(ApiModel):
    fileName: FileName
    storedPath: Text(min_length=1)
    """The key the upload (GET /upload/parameter) gave."""


class JobAddFileOutput(ApiModel):
    id: Id
    fileId: Id
    fileName: str
    isLocked: bool


class ContainerFilesQuery(ApiModel):
    path: str = "/"
    """A folder under /kqi/output."""
    withUrl: QueryBool = False


class ContainerDirOutput(ApiModel):
    dirName: str
    dirPath: str


class ContainerFileOutput(ApiModel):
    key: str
    fileName: str
    size: int
    lastModified: str | None
    """ISO 8601 with an offset."""
    url: str | None


class ContainerFilesOutput(ApiModel):
    dirs: list[ContainerDirOutput]
    files: list[ContainerFileOutput]
    exceeded: bool
    """More than 10000 entries: the lists are cut."""


class JobLogQuery(ApiModel):
    offset: int = Field(0, ge=0, le=2**53)
    """The byte to start from."""
    follow: QueryBool = False
    """Keep the answer open and send new lines until the job ends."""


# ------------------------------------------------------------------------- TensorBoard
class TensorBoardInput(ApiModel):
    expiresIn: float | None = Field(None, ge=0)
    """Seconds to run (0 or left out: the platform's default)."""
    selectedHistoryIds: list[Id] | None = None
    """Other trainings shown in the same TensorBoard."""


class TensorBoardOutput(ApiModel):
    name: str | None
    status: str
    """None, Pending, Running or Error."""
    statusType: str
    nodePort: int | None
    remainingTime: int | None
    """Seconds left."""
    mountedTrainingHistoryIds: list[int]
    url: str | None
    expiresAt: str | None
    """ISO 8601 with an offset."""
    startedAt: str | None
    startedBy: str | None


class AdminTensorBoardOutput(TensorBoardOutput):
    trainingId: Id
    """The training's id in its tenant (trainings count 1, 2, 3 … per tenant)."""
    trainingName: str
    tenantId: Id
    tenantName: str | None


class AdminTensorBoardQuery(ApiModel):
    tenantId: Id | None = None
    """The training's tenant (a training id is a tenant's own): needed when trainings of several
    tenants with this id have a TensorBoard."""


# ------------------------------------------------------------------------ preprocessing
class PreprocessingSearchQuery(ApiModel):
    id: NumberFilter | None = None
    """An id or a comparison such as `>10`."""
    name: str | None = None
    memo: str | None = None
    createdAt: DateFilter | None = None


class JobGitModelNullableInput(ApiModel):
    gitId: Id | None = None
    owner: Text(100) | None = None
    repository: Text(100) | None = None
    branch: Text(256) | None = None
    commitId: Text(40) | None = None


class JobContainerImageNullableInput(ApiModel):
    registryId: Id | None = None
    image: Text(512) | None = None
    tag: Text(256) | None = None


class PreprocessingCreateInput(ApiModel):
    name: Name
    memo: Text(4096) | None = None
    entryPoint: Text(65536) | None = None
    cpu: Resource | None = None
    memory: Resource | None = None
    gpu: GpuCount | None = None
    containerImage: JobContainerImageNullableInput | None = None
    gitModel: JobGitModelNullableInput | None = None


class PreprocessingEditInput(ApiModel):
    name: Name | None = None
    memo: Text(4096) | None = None
    cpu: Resource | None = None
    memory: Resource | None = None
    gpu: GpuCount | None = None


class PreprocessingIndexOutput(ApiModel):
    id: Id
    displayId: int
    name: str
    memo: str | None
    cpu: float | None
    memory: float | None
    gpu: int | None
    createdBy: str | None
    createdAt: Timestamp
    modifiedBy: str | None
    modifiedAt: Timestamp


class PreprocessingDetailsOutput(PreprocessingIndexOutput):
    entryPoint: str | None
    containerImage: JobContainerImageOutput
    gitModel: JobGitModelOutput
    isLocked: bool
    """It has run: only name, memo and default resources can change."""
    missingToRun: list[str]


class PreprocessingRunInput(ApiModel):
    dataId: Id | None = None
    """The data to preprocess."""
    dataIds: list[Id] | None = None
    """Several data at once (KQI addition): the answer is then a list."""
    cpu: Resource | None = None
    memory: Resource | None = None
    gpu: GpuCount | None = None
    partition: Text(128) | None = None
    options: EnvOptions | None = None


class PreprocessingHistoryOutput(ApiModel):
    key: str
    status: str
    statusType: str
    createdAt: Timestamp
    dataId: Id
    dataName: str | None
    preprocessId: Id
    preprocessName: str | None
    historyId: Id
    jobId: Id | None
    outputDataIds: list[int]
    conditionNote: str | None


class PreprocessingAddOutputDataInput(ApiModel):
    name: Text(128) | None = None
    """The new data's name (by default <input data>_<preprocessing>)."""
    memo: Text(4096) | None = None
    tags: list[Tag] | None = None
    files: list[AddFileInput] | None = None


class PreprocessingOutputDataOutput(ApiModel):
    id: Id
    name: str
