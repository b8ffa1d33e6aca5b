"""Preprocessing (the guide's 前処理管理): definitions, runs over data, and their histories.

A run of preprocessing P over data D is a job whose input is D at /kqi/input/<D>/<file>;
every file under /kqi/output/<name>/ (recursively) becomes a new data named <name>, whose
parent is D. A preprocessing runs at most once per data (one history per pair) until that
history is deleted, which deletes the data it produced. The offline flow (CLI only) opens
a history without a job and registers results uploaded from elsewhere.
"""
from __future__ import annotations

import os
import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..db.models import GitServer, Tenant, utcnow
from ..db.models_data import Data, DataFile, DataTag
from ..db.models_jobs import Job
from ..db.models_preprocessing import PreprocessHistory, PreprocessHistoryOutput, Preprocessing
from ..storage.factory import tenant_key
from . import job_status as st
from .data import DataManager, apply_date, apply_number, contains, read_tags
from .git_models import repository_url, resolve_commit
from .jobs import check_node_capacity, git_token, read_env, tenant_partitions
from .paging import Page, PageRequest, fetch_page, hold
from .uploads import check_file_name
from .validation import ConflictError, Fields, NotFoundError, ValidationError
from . import ids
from .ids import next_display_id

OPENED = "Opened"
OUTPUT_NAME = re.compile(r"^[-_0-9a-zA-Z]{1,128}$")
OUTPUT_NAME_HELP = "an output folder name (the new data's name) has 1-128 of the characters -_0-9a-zA-Z"


def preprocessing_index(p: Preprocessing) -> dict:
    return {"id": p.id, "displayId": p.display_id, "name": p.name, "memo": p.memo, "cpu": p.cpu,
            "memory": p.memory, "gpu": p.gpu, "createdBy": p.created_by, "createdAt": p.created_at,
            "modifiedBy": p.modified_by, "modifiedAt": p.modified_at}


def runnable_problems(p: Preprocessing) -> list[str]:
    """What a definition still lacks to run on the platform (everything but the memo is needed)."""
    missing = []
    for attr, label in (("entry_point", "the command"), ("image", "the container image"),
                        ("tag", "the image tag"), ("git_id", "the model repository"),
                        ("cpu", "cpu"), ("memory", "memory"), ("gpu", "gpu")):
        if getattr(p, attr) is None or getattr(p, attr) == "":
            missing.append(label)
    return missing


class PreprocessingManager:
    def __init__(self, db: Session, tenant: Tenant, user: str, secret_box=None):
        self.db, self.tenant, self.user, self.secret_box = db, tenant, user, secret_box

    # ----------------------------------------------------------------- definitions
    def get(self, preprocess_id: int) -> Preprocessing:
        p = self.db.get(Preprocessing, preprocess_id)
        if p is None or p.tenant_id != self.tenant.id:
            raise NotFoundError(f"No preprocessing has the id {preprocess_id} in this tenant.")
        return p

    def search(self, args: dict) -> list[Preprocessing]:
        return self.search_page(args, None).rows

    def search_page(self, args: dict, request: PageRequest | None) -> Page:
        """One page of the definitions that match the list filters, newest first."""
        return fetch_page(self.db, self.filtered(args), [Preprocessing.id.desc()], request)

    def filtered(self, args: dict):
        q = select(Preprocessing).where(Preprocessing.tenant_id == self.tenant.id)
        if args.get("id"):
            q = apply_number(q, Preprocessing.id, args["id"], "id")
        if args.get("name"):
            q = q.where(contains(self.db, Preprocessing.name, args["name"]))
        if args.get("memo"):
            q = q.where(contains(self.db, Preprocessing.memo, args["memo"]))
        if args.get("createdAt"):
            q = apply_date(q, Preprocessing.created_at, args["createdAt"], "createdAt")
        return q

    def histories_of(self, p: Preprocessing) -> list[PreprocessHistory]:
        return self.history_page(p, None).rows

    def has_histories(self, p: Preprocessing) -> bool:
        return self.db.scalar(select(PreprocessHistory.id).where(PreprocessHistory.preprocess_id == p.id)
                              .limit(1)) is not None

    def history_page(self, p: Preprocessing, request: PageRequest | None) -> Page:
        """One page of a definition's histories (oldest first), with what their outputs show
        (input data, jobs) read in one query each for the page."""
        page = fetch_page(self.db, select(PreprocessHistory).where(PreprocessHistory.preprocess_id == p.id),
                          [PreprocessHistory.id], request, [selectinload(PreprocessHistory.outputs)])
        # into the session's identity map, so that history_output's db.get reads no row again
        hold(self.db, [p])
        data_ids = {h.input_data_id for h in page.rows}
        job_ids = {h.job_id for h in page.rows if h.job_id is not None}
        if data_ids:
            hold(self.db, self.db.scalars(select(Data).where(Data.id.in_(data_ids))).all())
        if job_ids:
            hold(self.db, self.db.scalars(select(Job).where(Job.id.in_(job_ids))).all())
        return page

    def details(self, p: Preprocessing) -> dict:
        out = preprocessing_index(p)
        server = self.db.get(GitServer, p.git_id) if p.git_id else None
        from ..db.models import Registry

        registry = self.db.get(Registry, p.registry_id) if p.registry_id else None
        out.update({
            "entryPoint": p.entry_point,
            "containerImage": {"registryId": p.registry_id, "registryName": registry.name if registry else None,
                               "image": p.image, "tag": p.tag,
                               "url": f"{registry.host}/{p.image}:{p.tag}" if registry and p.image else None},
            "gitModel": {"gitId": p.git_id, "owner": p.repository_owner, "repository": p.repository_name,
                         "branch": p.branch, "commitId": p.commit_id,
                         "url": repository_url(server, p.repository_owner, p.repository_name,
                                               tenant=self.tenant.name)
                         if server and p.repository_owner else None},
            "isLocked": self.has_histories(p),
            "missingToRun": runnable_problems(p),  # KQI addition
        })
        return out

    def _read_definition(self, body: dict, name_required: bool = True) -> dict:
        f = Fields(body)
        v = {
            "name": f.str("name", required=name_required, max_length=256),
            "memo": f.str("memo", max_length=4096, allow_empty=True),
            "entry_point": f.str("entryPoint", max_length=65536),
            "cpu": f.number("cpu", minimum=0),
            "memory": f.number("memory", minimum=0),
            "gpu": f.int("gpu", minimum=0),
        }
        image = body.get("containerImage")
        if image is not None and not isinstance(image, dict):
            f.error("containerImage", "must be {registryId, image, tag}")
        elif image:
            fi = Fields(image)
            v["registry_id"] = fi.int("registryId", default=self.tenant.default_registry_id)
            v["image"] = fi.str("image", max_length=512)
            v["tag"] = fi.str("tag", max_length=256)
            if v["registry_id"] is not None and v["registry_id"] not in {r.id for r in self.tenant.registries}:
                f.error("containerImage.registryId", "is not a registry of this tenant")
        f.done()
        git = body.get("gitModel")
        if git:
            if not isinstance(git, dict):
                raise ValidationError({"gitModel": ["must be {gitId, owner, repository, branch, commitId}"]})
            fg = Fields(git)
            git_id = fg.int("gitId", default=self.tenant.default_git_id)
            owner = fg.str("owner", required=True, max_length=100)
            repo = fg.str("repository", required=True, max_length=100)
            branch = fg.str("branch", max_length=256)
            commit = fg.str("commitId", max_length=40)
            if fg.errors:
                raise ValidationError({f"gitModel.{k}": m for k, m in fg.errors.items()})
            server = self.db.get(GitServer, git_id) if git_id is not None else None
            if server is None or server not in self.tenant.git_servers:
                raise ValidationError({"gitModel.gitId": ["is not a git server of this tenant"]})
            url = repository_url(server, owner, repo, tenant=self.tenant.name)
            commit_id, branch = resolve_commit(url, branch, commit, git_token(self.db, self.user, server.id,
                                                                              self.secret_box))
            v.update(git_id=server.id, repository_owner=owner, repository_name=repo, branch=branch,
                     commit_id=commit_id)
        return v

    def create(self, body: dict) -> Preprocessing:
        values = self._read_definition(body)
        display_id = next_display_id(self.db, self.tenant.id, ids.PREPROCESSING)
        p = Preprocessing(tenant_id=self.tenant.id, display_id=display_id, created_by=self.user,
                          modified_by=self.user, **values)
        self.db.add(p)
        self.db.commit()
        return p

    def replace(self, p: Preprocessing, body: dict) -> Preprocessing:
        if self.histories_of(p):
            raise ConflictError(f"The preprocessing {p.name} has run already: only its name, memo and default "
                                "resources can change (PATCH).")
        values = self._read_definition(body)
        for attr in ("entry_point", "registry_id", "image", "tag", "git_id", "repository_owner",
                     "repository_name", "branch", "commit_id", "cpu", "memory", "gpu", "memo"):
            setattr(p, attr, values.get(attr))
        p.name = values["name"]
        p.modified_by = self.user
        self.db.commit()
        return p

    def patch(self, p: Preprocessing, body: dict) -> Preprocessing:
        f = Fields(body)
        name = f.str("name", max_length=256)
        memo = f.str("memo", max_length=4096, allow_empty=True)
        cpu = f.number("cpu", minimum=0)
        memory = f.number("memory", minimum=0)
        gpu = f.int("gpu", minimum=0)
        f.done()
        for attr, value in (("name", name), ("memo", memo), ("cpu", cpu), ("memory", memory), ("gpu", gpu)):
            if value is not None:
                setattr(p, attr, value)
        p.modified_by = self.user
        self.db.commit()
        return p

    def delete(self, p: Preprocessing) -> None:
        if self.histories_of(p):
            raise ConflictError(f"The preprocessing {p.name} has histories: delete them first.")
        self.db.delete(p)
        self.db.commit()

    # ----------------------------------------------------------------- histories
    def history(self, p: Preprocessing, data_id: int) -> PreprocessHistory:
        h = self.db.scalar(select(PreprocessHistory).where(PreprocessHistory.preprocess_id == p.id,
                                                           PreprocessHistory.input_data_id == data_id))
        if h is None:
            raise NotFoundError(f"The preprocessing {p.name} has no history for the data {data_id}.")
        return h

    def history_label(self, h: PreprocessHistory) -> str:
        """How messages name a history: by the route's ids (preprocessing, input data)."""
        return f"preprocessing history of the preprocessing {h.preprocess_id} on the data {h.input_data_id}"

    def history_status(self, h: PreprocessHistory) -> str:
        if h.job_id is None:
            return h.status
        job = self.db.get(Job, h.job_id)
        return job.status if job else h.status

    def history_output(self, h: PreprocessHistory) -> dict:
        p = self.db.get(Preprocessing, h.preprocess_id)
        data = self.db.get(Data, h.input_data_id)
        status = self.history_status(h)
        return {"key": f"preproc-{h.id}", "status": status, "statusType": st.STATUS_TYPE.get(status, "None"),
                "createdAt": h.created_at, "dataId": h.input_data_id, "dataName": data.name if data else None,
                "preprocessId": h.preprocess_id, "preprocessName": p.name if p else None,
                # KQI additions
                "historyId": h.id, "jobId": self._shown_job_id(h), "outputDataIds": [o.data_id for o in h.outputs],
                "conditionNote": self._reason(h)}

    def _shown_job_id(self, h: PreprocessHistory) -> int | None:
        """The id of the history's run among the tenant's preprocessing runs (None offline)."""
        job = self.db.get(Job, h.job_id) if h.job_id is not None else None
        return job.display_id if job else None

    def _reason(self, h: PreprocessHistory) -> str | None:
        if h.job_id is not None:
            job = self.db.get(Job, h.job_id)
            return job.status_reason if job else h.status_reason
        return h.status_reason

    def _input_data(self, data_id) -> Data:
        if not isinstance(data_id, int) or isinstance(data_id, bool):
            raise ValidationError({"dataId": ["is required: the id of the data to preprocess"]})
        data = self.db.get(Data, data_id)
        if data is None or data.tenant_id != self.tenant.id:
            raise NotFoundError(f"No data has the id {data_id} in this tenant.")
        return data

    def _check_first_run(self, p: Preprocessing, data: Data) -> None:
        existing = self.db.scalar(select(PreprocessHistory).where(PreprocessHistory.preprocess_id == p.id,
                                                                  PreprocessHistory.input_data_id == data.id))
        if existing is not None:
            raise ConflictError(f"The preprocessing {p.name} has run on the data {data.name} already "
                                f"(history {existing.id}): delete that history to run it again.")

    def run(self, p: Preprocessing, body: dict, dry_run: bool = False) -> tuple[PreprocessHistory, Job] | None:
        """Start a run over body["dataId"]; with dry_run, only check that it could start."""
        problems = runnable_problems(p)
        if problems:
            raise ValidationError({"preprocessing": [f"the preprocessing {p.name} cannot run on the platform "
                                                     "without " + ", ".join(problems)]})
        data = self._input_data(body.get("dataId"))
        f = Fields(body)
        cpu = f.number("cpu", default=p.cpu, minimum=0)
        memory = f.number("memory", default=p.memory, minimum=0)
        gpu = f.int("gpu", default=p.gpu, minimum=0)
        partition = f.str("partition", max_length=128)
        env = read_env(f)
        if cpu is not None and cpu <= 0:
            f.error("cpu", "must be more than 0")
        if memory is not None and memory <= 0:
            f.error("memory", "must be more than 0")
        if partition and partition not in tenant_partitions(self.db, self.tenant):
            f.error("partition", f"this tenant has no partition {partition!r}")
        t = self.tenant
        for field, value, limit in (("cpu", cpu, t.limit_cpu), ("memory", memory, t.limit_memory),
                                    ("gpu", gpu, t.limit_gpu)):
            if limit and value is not None and value > limit:
                f.error(field, f"{value} is over the tenant quota of {limit}")
        check_node_capacity(self.db, self.tenant, f, cpu, memory, gpu, partition)
        f.done()
        self._check_first_run(p, data)
        if dry_run:
            return None
        display_id = next_display_id(self.db, self.tenant.id, ids.job_kind("preprocessing"))
        job = Job(tenant_id=self.tenant.id, kind="preprocessing", display_id=display_id,
                  name=f"preproc-{p.id}-{data.id}"[:30], entry_point=p.entry_point, registry_id=p.registry_id,
                  image=p.image, tag=p.tag, git_id=p.git_id, repository_owner=p.repository_owner,
                  repository_name=p.repository_name, branch=p.branch, commit_id=p.commit_id, options=env,
                  cpu=cpu, memory=memory, gpu=gpu, partition=partition, zip=False, local_dataset=True,
                  status=st.QUEUED, created_by=self.user, modified_by=self.user,
                  extra={"preprocessId": p.id, "dataId": data.id, "dataName": data.name,
                         "preprocessName": p.name})
        self.db.add(job)
        self.db.flush()
        h = PreprocessHistory(tenant_id=self.tenant.id, preprocess_id=p.id, input_data_id=data.id, job_id=job.id,
                              status=st.QUEUED, created_by=self.user)
        self.db.add(h)
        self.db.commit()
        return h, job

    def open_history(self, p: Preprocessing, data_id: int) -> PreprocessHistory:
        """The offline flow: a history without a job, Opened for results to be added."""
        data = self._input_data(data_id)
        self._check_first_run(p, data)
        h = PreprocessHistory(tenant_id=self.tenant.id, preprocess_id=p.id, input_data_id=data.id, status=OPENED,
                              created_by=self.user)
        self.db.add(h)
        self.db.commit()
        return h

    def add_output_data(self, p: Preprocessing, h: PreprocessHistory, body: dict, store) -> Data:
        status = self.history_status(h)
        if status not in (OPENED, st.RUNNING):
            raise ConflictError(f"Results can be added only while the history is Opened or Running, not {status}.")
        input_data = self.db.get(Data, h.input_data_id)
        f = Fields(body)
        name = f.str("name", max_length=128) or f"{input_data.name}_{p.name}"[:128]
        if not OUTPUT_NAME.match(name):
            f.error("name", OUTPUT_NAME_HELP)
        memo = f.str("memo", max_length=4096, allow_empty=True)
        tags = read_tags(f)
        f.done()
        files = body.get("files") or []
        manager = DataManager(self.db, self.tenant, store)
        data = manager.create({"name": name, "memo": memo, "tags": output_tags(input_data, p, tags)}, self.user,
                              parent=input_data)
        try:
            if files:
                manager.add_files(data, {"files": files}, self.user)
        except Exception:
            self.db.delete(data)
            self.db.commit()
            raise
        self.db.add(PreprocessHistoryOutput(history_id=h.id, data_id=data.id))
        self.db.commit()
        return data

    def finish_offline(self, h: PreprocessHistory, status: str) -> PreprocessHistory:
        if h.job_id is not None:
            raise ConflictError("This history runs on the platform: use halt, or wait for it to end.")
        if h.status != OPENED:
            raise ConflictError(st.ended_message(self.history_label(h), h.status))
        h.status = status
        h.completed_at = utcnow()
        self.db.commit()
        return h

    def delete_history(self, h: PreprocessHistory, store) -> None:
        status = self.history_status(h)
        if status in st.ACTIVE:
            raise ConflictError("The preprocessing is still running: halt it first.")
        manager = DataManager(self.db, self.tenant, store)
        outputs = [self.db.get(Data, o.data_id) for o in h.outputs]
        for data in outputs:
            if data is not None and manager.datasets_using(data):
                names = ", ".join(d.name for d in manager.datasets_using(data))
                raise ConflictError(f"The data {data.name} made by this history is used by the dataset(s) {names}.")
        job = self.db.get(Job, h.job_id) if h.job_id else None
        self.db.delete(h)
        self.db.flush()
        for data in outputs:
            if data is not None:
                manager.delete(data)
        if job is not None:
            self.db.delete(job)
        self.db.commit()

    def lineage_of_data(self, data: Data) -> dict | None:
        """Which preprocessing made a data, from which input (None for uploaded data)."""
        row = self.db.scalar(select(PreprocessHistoryOutput).where(PreprocessHistoryOutput.data_id == data.id))
        if row is None:
            return None
        h = self.db.get(PreprocessHistory, row.history_id)
        p = self.db.get(Preprocessing, h.preprocess_id)
        return {"historyId": h.id, "preprocessId": p.id, "preprocessName": p.name, "inputDataId": h.input_data_id}

    def children_of_data(self, data: Data) -> list[dict]:
        rows = self.db.scalars(select(PreprocessHistory).where(PreprocessHistory.input_data_id == data.id)).all()
        out = []
        for h in rows:
            p = self.db.get(Preprocessing, h.preprocess_id)
            out.append({"id": h.id, "inputDataId": data.id, "inputDataName": data.name, "preprocessId": p.id,
                        "preprocessName": p.name})
        return out


def output_tags(input_data: Data, p: Preprocessing, given: list[str] | None = None) -> list[str]:
    """The tags of a preprocessing's output data: the input data's, then the preprocessing's (the
    ones given with the results, or else its name, KAMONOHASHI's default), each once."""
    own = list(given) if given else [p.name[:128]]
    return list(dict.fromkeys([t.name for t in input_data.tags] + own))


def collect_outputs(db: Session, app, job: Job) -> None:
    """The engine's finish hook for preprocessing: each folder under /kqi/output becomes a data."""
    if job.kind != "preprocessing":
        return
    h = db.scalar(select(PreprocessHistory).where(PreprocessHistory.job_id == job.id))
    if h is None:
        return
    h.status = job.status
    h.completed_at = job.completed_at
    if job.status != st.COMPLETED:
        db.commit()
        return
    tenant = db.get(Tenant, job.tenant_id)
    store = app.stores.for_tenant(tenant)
    p = db.get(Preprocessing, h.preprocess_id)
    input_data = db.get(Data, h.input_data_id)
    from ..jobs.engine import OUTPUT_FOLDER

    prefix = tenant_key(tenant, f"{OUTPUT_FOLDER['preprocessing']}/{job.id}") + "/"
    groups: dict[str, list] = {}
    for info in store.list(prefix):
        rest = info.key[len(prefix):]
        if "/" not in rest:
            continue  # files directly under /kqi/output are not added
        groups.setdefault(rest.split("/", 1)[0], []).append(info)
    bad = [name for name in groups if not OUTPUT_NAME.match(name)]
    if bad:
        job.status = st.FAILED
        job.status_reason = f"{OUTPUT_NAME_HELP}: " + ", ".join(sorted(bad)[:5])
        h.status = st.FAILED
        db.commit()
        return
    made = []
    for name in sorted(groups):
        display_id = next_display_id(db, tenant.id, ids.DATA)
        data = Data(tenant_id=tenant.id, display_id=display_id, name=name, memo=None,
                    parent_data_id=input_data.id, created_by=job.created_by, modified_by=job.created_by)
        data.tags = [DataTag(name=t) for t in output_tags(input_data, p)]
        db.add(data)
        db.flush()
        used = set()
        for info in sorted(groups[name], key=lambda i: i.key):
            rel = info.key[len(prefix) + len(name) + 1:]
            file_name = os.path.basename(rel)
            if file_name in used:
                file_name = rel.replace("/", "_")
            used.add(file_name)
            check_file_name(file_name)
            stored_path = f"Data/{uuid.uuid4().hex}/{file_name}"
            size = store.write(tenant_key(tenant, stored_path), store.read(info.key))
            db.add(DataFile(data_id=data.id, file_name=file_name, stored_path=stored_path, size=size,
                            created_by=job.created_by))
            made.append(stored_path)
        db.add(PreprocessHistoryOutput(history_id=h.id, data_id=data.id))
    store.delete_prefix(prefix)
    db.commit()
    for stored_path in made:
        app.schedule_hash(tenant, stored_path)
