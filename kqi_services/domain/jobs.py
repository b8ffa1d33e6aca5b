"""Jobs (training here; inference and preprocessing reuse it): the rules of a submission,
the views the API returns, and who may change what.
"""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import false, select
from sqlalchemy.orm import Session

from ..db.models import GitServer, Node, Registry, Tenant, UserGitToken, UserSetting
from ..db.models_data import DataSet
from ..db.models_jobs import Job, JobParent, JobTag
from . import job_status as st
from .data import DB_MAX_ID, apply_date, apply_number, contains, number_filter, read_tags, replace_tags, tag_condition
from .datasets import LOCK_CHECKS, dataset_index
from .git_models import repository_url, resolve_commit
from .paging import Page, PageRequest, fetch_page, grouped
from .validation import ConflictError, Fields, NotFoundError, ValidationError
from . import ids
from .ids import next_display_id

JOB_NAME = r"[a-z0-9-]{1,30}"
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# set by the platform; a user's value for these is refused (the guide's 上書き不可)
RESERVED_ENV = {
    "LC_ALL", "LANG", "TRAINING_ID", "INFERENCE_ID", "PREPROCESSING_ID", "NOTEBOOK_ID", "DATASET_ID",
    "DATA_ID", "DATA_NAME", "PARENT_ID", "MODEL_REPOSITORY", "MODEL_REPOSITORY_URL", "MODEL_REPOSITORY_TOKEN",
    "COMMIT_ID", "KQI_SERVER", "KQI_TOKEN", "KQI_VERSION", "ENTRY_POINT", "ZIP_FILE_CREATED", "LOCAL_DATASET",
    "PYTHONUNBUFFERED", "TAGS", "EXPIRES_IN", "JUPYTERLAB_VERSION",
}
# overridable defaults set by the platform
OVERRIDABLE_ENV = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "COLUMNS"}


def _dataset_lock(db: Session, dataset: DataSet) -> str | None:
    users = db.scalars(select(Job).where(Job.dataset_id == dataset.id, Job.kind.in_(("training", "inference")))
                       .order_by(Job.id).limit(3)).all()
    if not users:
        return None
    return "used by " + ", ".join(f"{j.kind} {j.display_id}" for j in users)


LOCK_CHECKS.append(_dataset_lock)


def tenant_partitions(db: Session, tenant: Tenant) -> set[str]:
    nodes = db.scalars(select(Node).where(Node.access_level > 0)).all()
    return {n.partition for n in nodes if n.partition and (n.access_level == 2 or tenant in n.tenants)}


def check_node_capacity(db: Session, tenant: Tenant, f: Fields, cpu, memory, gpu, partition) -> None:
    """A request that no node of its partition (of the tenant's nodes) could ever hold is refused with
    the numbers (jobs.scheduler.node_fit_errors); one that fits a node waits in the queue for room."""
    from ..jobs.scheduler import node_fit_errors
    from .infra import tenant_nodes

    if None in (cpu, memory, gpu) or "partition" in f.errors:
        return
    for field, message in node_fit_errors(cpu, memory, gpu, tenant_nodes(db, tenant), partition).items():
        f.error(field, message)


def read_env(f: Fields, field: str = "options") -> dict[str, str]:
    options = f.body.get(field)
    if options is None:
        return {}
    if not isinstance(options, dict):
        f.error(field, "must be an object of environment variable names to values")
        return {}
    env = {}
    for name, value in options.items():
        if not ENV_NAME.match(name):
            f.error(field, f"{name!r} is not a valid environment variable name")
        elif name in RESERVED_ENV:
            f.error(field, f"{name} is set by the platform and cannot be given")
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            f.error(field, f"the value of {name} must be a string")
        else:
            env[name] = "" if value is None else str(value)
    return env


class JobSubmission:
    """Reads and checks a create body (training's shape) into the values of a new Job."""

    def __init__(self, db: Session, tenant: Tenant, user: str, kind: str, secret_box=None):
        self.db, self.tenant, self.user, self.kind = db, tenant, user, kind
        self.secret_box = secret_box

    def read(self, body: dict, *, dataset_required=True, git_required=True, parent_kind="training") -> dict:
        f = Fields(body)
        v: dict = {"kind": self.kind}
        v["name"] = f.str("name", required=True, max_length=30, pattern=JOB_NAME,
                          pattern_help="lower-case letters, digits and '-', at most 30 characters")
        v["memo"] = f.str("memo", max_length=4096, allow_empty=True)
        v["entry_point"] = f.str("entryPoint", required=True, max_length=65536)
        v["cpu"] = f.number("cpu", required=True, minimum=0)
        v["memory"] = f.number("memory", required=True, minimum=0)
        v["gpu"] = f.int("gpu", required=True, minimum=0)
        if v["cpu"] is not None and v["cpu"] <= 0:
            f.error("cpu", "must be more than 0")
        if v["memory"] is not None and v["memory"] <= 0:
            f.error("memory", "must be more than 0")
        v["partition"] = f.str("partition", max_length=128)
        v["zip"] = f.bool("zip", default=True)
        v["local_dataset"] = f.bool("localDataSet", default=False)
        v["options"] = read_env(f)
        ports = body.get("ports") or []
        if not isinstance(ports, list) or not all(isinstance(p, int) and 1 <= p <= 65535 for p in ports):
            f.error("ports", "must be a list of port numbers from 1 to 65535")
            ports = []
        v["ports"] = sorted(set(ports))
        v["tags"] = read_tags(f) or []

        image = body.get("containerImage")
        if not isinstance(image, dict):
            f.error("containerImage", "is required: {registryId, image, tag}")
            image = {}
        fi = Fields(image)
        v["registry_id"] = fi.int("registryId", default=self.tenant.default_registry_id)
        v["image"] = fi.str("image", required=True, max_length=512)
        v["tag"] = fi.str("tag", required=True, max_length=256)
        for k, msgs in fi.errors.items():
            for m in msgs:
                f.error(f"containerImage.{k}", m)
        registry_ids = {r.id for r in self.tenant.registries}
        if v["registry_id"] is not None and v["registry_id"] not in registry_ids:
            f.error("containerImage.registryId", "is not a registry of this tenant")

        dataset_id = f.int("dataSetId", required=dataset_required)
        v["dataset_id"] = dataset_id
        if dataset_id is not None:
            dataset = self.db.get(DataSet, dataset_id)
            if dataset is None or dataset.tenant_id != self.tenant.id:
                f.error("dataSetId", f"no dataset has the id {dataset_id} in this tenant")

        parent_ids = f.int_list("parentIds")
        v["parent_ids"] = parent_ids
        if parent_ids:  # the ids the tenant sees; the job links to the parents' table ids
            found = ids.find_jobs(self.db, self.tenant.id, parent_kind, parent_ids)
            missing = [i for i in parent_ids if i not in found]
            if missing:
                f.error("parentIds", f"no {parent_kind} in this tenant has the id(s) " + ", ".join(map(str, missing)))
            v["parent_ids"] = list(dict.fromkeys(found[i].id for i in parent_ids if i in found))

        if v["partition"]:
            if v["partition"] not in tenant_partitions(self.db, self.tenant):
                f.error("partition", f"this tenant has no partition {v['partition']!r}")
        self._quota(f, v)

        git = body.get("gitModel")
        if git is None and git_required:
            f.error("gitModel", "is required: {gitId, owner, repository, branch, commitId}")
        f.done()
        v.update(self._git(git) if git else {})
        return v

    def _quota(self, f: Fields, v: dict) -> None:
        t = self.tenant
        for field, limit in (("cpu", t.limit_cpu), ("memory", t.limit_memory), ("gpu", t.limit_gpu)):
            if limit and v.get(field) is not None and v[field] > limit:
                f.error(field, f"{v[field]:g} is over the tenant quota of {limit:g}")
        check_node_capacity(self.db, self.tenant, f, v.get("cpu"), v.get("memory"), v.get("gpu"), v.get("partition"))

    def _git(self, git: dict) -> dict:
        if not isinstance(git, dict):
            raise ValidationError({"gitModel": ["must be {gitId, owner, repository, branch, commitId}"]})
        fg = Fields(git)
        git_id = fg.int("gitId", default=self.tenant.default_git_id)
        owner = fg.str("owner", required=True, max_length=100)
        repository = fg.str("repository", required=True, max_length=100)
        branch = fg.str("branch", max_length=256)
        commit = fg.str("commitId", max_length=40)
        if fg.errors:
            raise ValidationError({f"gitModel.{k}": m for k, m in fg.errors.items()})
        server = self.db.get(GitServer, git_id) if git_id is not None else None
        if server is None or server not in self.tenant.git_servers:
            raise ValidationError({"gitModel.gitId": ["is not a git server of this tenant"]})
        url = repository_url(server, owner, repository, tenant=self.tenant.name)
        token = git_token(self.db, self.user, server.id, self.secret_box)
        commit_id, branch = resolve_commit(url, branch, commit, token)
        return {"git_id": server.id, "repository_owner": owner, "repository_name": repository,
                "branch": branch, "commit_id": commit_id}


def git_token(db: Session, user: str, git_id: int, secret_box) -> str | None:
    if secret_box is None:
        return None
    row = db.scalar(select(UserGitToken).join(UserSetting, UserSetting.id == UserGitToken.user_id)
                    .where(UserSetting.name == user, UserGitToken.git_server_id == git_id))
    return secret_box.decrypt(row.token_encrypted) if row else None


def create_job(db: Session, tenant: Tenant, user: str, values: dict) -> Job:
    parent_ids = values.pop("parent_ids", [])
    tags = values.pop("tags", [])
    display_id = next_display_id(db, tenant.id, ids.job_kind(values["kind"]))
    job = Job(tenant_id=tenant.id, display_id=display_id, status=st.QUEUED, created_by=user, modified_by=user,
              **values)
    job.parents = [JobParent(parent_id=i) for i in parent_ids]
    job.tags = [JobTag(name=t) for t in tags]
    db.add(job)
    db.commit()
    return job


# ---------------------------------------------------------------------------- views
def _duration(start: datetime | None, end: datetime | None) -> str | None:
    if start is None:
        return None
    seconds = int(((end or datetime.utcnow()) - start).total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


#: the columns of a job that its index shows (a list reads only these)
INDEX_COLUMNS = (Job.id, Job.display_id, Job.name, Job.memo, Job.favorite, Job.status, Job.dataset_id,
                 Job.entry_point, Job.created_by, Job.created_at, Job.modified_by, Job.modified_at)
_DATASET_COLUMNS = (DataSet.id, DataSet.display_id, DataSet.name, DataSet.memo, DataSet.is_flat,
                    DataSet.created_by, DataSet.created_at, DataSet.modified_by, DataSet.modified_at)


def _index_view(job, tags: list[str], parents: list[tuple[int, str]], dataset) -> dict:
    """KAMONOHASHI's index of a job; `job` is a Job or a row of INDEX_COLUMNS, `parents` the parents'
    (display id, name) in parent-id order, `dataset` a DataSet or a row of its columns."""
    return {
        "id": job.display_id,  # the tenant's number of the job among its kind (domain/ids.py)
        "displayId": job.display_id,
        "name": job.name,
        "fullName": f"{job.display_id}:{job.name}",
        "memo": job.memo,
        "favorite": job.favorite,
        "status": job.status,
        "statusType": st.STATUS_TYPE.get(job.status),
        "dataSet": dataset_index(dataset) if dataset is not None else None,
        "entryPoint": job.entry_point,
        "parentFullNameList": [f"{display_id}:{name}" for display_id, name in parents],
        "tags": tags,
        "createdBy": job.created_by,
        "createdAt": job.created_at,
        "modifiedBy": job.modified_by,
        "modifiedAt": job.modified_at,
    }


def job_index(db: Session, job: Job) -> dict:
    dataset = db.get(DataSet, job.dataset_id) if job.dataset_id else None
    parents = [(p.display_id, p.name) for p in (db.get(Job, i) for i in job.parent_ids) if p]
    return _index_view(job, job.tag_names, parents, dataset)


def job_indexes(db: Session, jobs) -> list[dict]:
    """The index of each of a page's jobs (Jobs or rows of INDEX_COLUMNS, as committed): their tags,
    parents and datasets read in one query each, as plain rows (no ORM objects), whatever the page size."""
    ids_ = [j.id for j in jobs]
    if not ids_:
        return []
    tags = grouped(db.execute(select(JobTag.job_id, JobTag.name).where(JobTag.job_id.in_(ids_))
                              .order_by(JobTag.job_id, JobTag.name)))
    parents = grouped(db.execute(
        select(JobParent.job_id, Job.display_id, Job.name).join(Job, Job.id == JobParent.parent_id)
        .where(JobParent.job_id.in_(ids_)).order_by(JobParent.job_id, JobParent.parent_id)))
    dataset_ids = {j.dataset_id for j in jobs if j.dataset_id is not None}
    datasets = ({d.id: d for d in db.execute(select(*_DATASET_COLUMNS).where(DataSet.id.in_(dataset_ids)))}
                if dataset_ids else {})
    return [_index_view(j, tags.get(j.id, []), parents.get(j.id, []), datasets.get(j.dataset_id)) for j in jobs]


def job_details(db: Session, job: Job, queue_info: dict | None = None) -> dict:
    out = job_index(db, job)
    if job.status != st.QUEUED:
        queue_info = None  # the engine's queue view may lag a halt by a tick
    registry = db.get(Registry, job.registry_id) if job.registry_id else None
    server = db.get(GitServer, job.git_id) if job.git_id else None
    out.update({
        "key": job.key,
        "containerImage": {"registryId": job.registry_id, "registryName": registry.name if registry else None,
                           "image": job.image, "tag": job.tag,
                           "url": f"{registry.host}/{job.image}:{job.tag}" if registry else None},
        "gitModel": {"gitId": job.git_id, "owner": job.repository_owner, "repository": job.repository_name,
                     "branch": job.branch, "commitId": job.commit_id,
                     "url": (repository_url(server, job.repository_owner, job.repository_name,
                                            tenant=db.get(Tenant, job.tenant_id).name)
                             if server and job.repository_owner else None)},
        "options": [{"key": k, "value": v} for k, v in sorted(job.options.items())],
        "parents": [job_index(db, p) for p in (db.get(Job, i) for i in job.parent_ids) if p],
        "cpu": job.cpu,
        "memory": job.memory,
        "gpu": job.gpu,
        "partition": job.partition,
        "ports": job.ports,
        "nodePorts": [],
        "zip": job.zip,
        "localDataSet": job.local_dataset,
        "node": job.node,
        "startedAt": job.started_at,
        "completedAt": job.completed_at,
        # until it started, or ended without starting (halted while queued): not a time that keeps growing
        "waitingTime": _duration(job.queued_at, job.started_at or job.completed_at),
        "executionTime": _duration(job.started_at, job.completed_at) if job.started_at else None,
        # what ended it, or while it waits, why (KAMONOHASHI's CLI shows this, not waitReason)
        "conditionNote": job.status_reason or (queue_info or {}).get("reason"),
        "logSummary": job.status_reason,
        # KQI additions
        "exitCode": job.exit_code,
        "queuedAt": job.queued_at,
        "queuePosition": (queue_info or {}).get("position"),
        "waitReason": (queue_info or {}).get("reason"),
        "waitAdvice": (queue_info or {}).get("advice"),  # KQI: what would let it run
    })
    return out


# --------------------------------------------------------------------------- queries
class JobQueries:
    def __init__(self, db: Session, tenant: Tenant, kind: str):
        self.db, self.tenant, self.kind = db, tenant, kind

    def get(self, job_id: int) -> Job:
        """The job of this kind the tenant knows by `job_id` (the id the API shows)."""
        job = ids.find_job(self.db, self.tenant.id, self.kind, job_id)
        if job is None:
            raise NotFoundError(f"No {self.kind} has the id {job_id} in this tenant.")
        return job

    def search(self, args: dict) -> list[Job]:
        """Every matching job, newest first, without their related rows (the simple lists)."""
        return list(self.db.scalars(self.filtered(args).order_by(Job.id.desc())).all())

    def search_page(self, args: dict, request: PageRequest | None, columns=INDEX_COLUMNS) -> Page:
        """One page of the jobs that match the list filters (newest first): rows of `columns`
        (INDEX_COLUMNS and whatever else a list shows), or Job objects without their related rows
        when `columns` is empty; either way show them with job_indexes (one query each for the
        page's tags, parents and datasets)."""
        return fetch_page(self.db, self.filtered(args), [Job.id.desc()], request, columns=columns)

    def filtered(self, args: dict):
        """The SELECT of this kind's jobs matching the list route's filters."""
        q = select(Job).where(Job.tenant_id == self.tenant.id, Job.kind == self.kind)
        if args.get("id"):
            q = apply_number(q, Job.display_id, args["id"], "id")
        if args.get("name"):
            q = q.where(contains(self.db, Job.name, args["name"]))
        if args.get("memo"):
            q = q.where(contains(self.db, Job.memo, args["memo"]))
        if args.get("entryPoint"):
            q = q.where(contains(self.db, Job.entry_point, args["entryPoint"]))
        if args.get("startedBy"):
            q = q.where(contains(self.db, Job.created_by, args["startedBy"]))
        if args.get("startedAt"):
            q = apply_date(q, Job.created_at, args["startedAt"], "startedAt")
        if args.get("status"):
            q = q.where(contains(self.db, Job.status, args["status"]))
        if args.get("dataSet"):
            q = q.where(Job.dataset_id.in_(select(DataSet.id).where(
                contains(self.db, DataSet.name, args["dataSet"]))))
        if args.get("parentId"):
            _, parent_id = number_filter(str(args["parentId"]), "parentId")
            parents = select(Job.id).where(Job.tenant_id == self.tenant.id, Job.kind == "training",
                                           Job.display_id == parent_id)
            q = q.where(Job.id.in_(select(JobParent.job_id).where(JobParent.parent_id.in_(parents)))
                        if parent_id <= DB_MAX_ID else false())
        for tag in args.get("tags") or []:  # "a,b": every tag of the list (as the data list)
            q = q.where(tag_condition(Job.id, JobTag.job_id, JobTag.name, tag))
        return q

    def update(self, job: Job, body: dict, actor: str) -> Job:
        f = Fields(body)
        name = f.str("name", max_length=30, pattern=JOB_NAME,
                     pattern_help="lower-case letters, digits and '-', at most 30 characters")
        memo = f.str("memo", max_length=4096, allow_empty=True)
        favorite = f.bool("favorite")
        tags = read_tags(f)
        f.done()
        if name is not None:
            job.name = name
        if memo is not None:
            job.memo = memo
        if favorite is not None:
            job.favorite = favorite
        if tags is not None:
            job.tags = replace_tags(job.tags, tags, JobTag)
        job.modified_by = actor
        self.db.commit()
        return job

    def children(self, job: Job) -> list[Job]:
        return list(self.db.scalars(select(Job).join(JobParent, JobParent.job_id == Job.id)
                                    .where(JobParent.parent_id == job.id)).all())

    def check_deletable(self, job: Job) -> None:
        if job.status in st.ACTIVE:
            raise ConflictError(f"The {job.kind} {job.display_id} is {job.status}: halt it before deleting it.")
        kids = self.children(job)
        if kids:
            raise ConflictError(f"The {job.kind} {job.display_id} is mounted by " +
                                ", ".join(f"{k.kind} {k.display_id}" for k in kids) + ": delete those first.")
