"""Notebooks (the guide's ノートブック管理) as hub named servers.

The service checks a run request (the same option rules as the spawners, plus the
references: dataset, trainings, inferences, model commit, partition, quota), records the
notebook, resolves its plan (dataset files, clone URL and commit, the folders to mount)
and asks the hub to start the owner's named server `kqi-<id>` with those user options.
A re-run resolves the plan again, so dataset changes are picked up; /kqi/output stays.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from kqi_spawner.options import OptionsError, issue_plan, parse_options, plan_key

from ..db.models import GitServer, Tenant, utcnow
from ..hub_client import HubError
from ..db.models_data import DataSet
from ..db.models_jobs import Job
from ..db.models_notebooks import Notebook
from ..storage.factory import tenant_key
from ..storage.local import LocalObjectStore
from ..jobs.launch import image_reference, registry_server
from ..jobs.scheduler import node_fit_errors
from .datasets import DataSetManager
from .job_environment import effective_job_environment
from .git_models import repository_url, resolve_commit
from .job_status import ended_message
from .jobs import git_token, tenant_partitions
from .infra import tenant_nodes
from .data import apply_date, apply_number, contains
from .paging import Page, PageRequest, fetch_page
from .validation import ConflictError, NotFoundError, ValidationError
from . import ids as display_ids
from .ids import next_display_id

OUTPUT_FOLDER = "NotebookContainerOutputFiles"
JOB_OUTPUT_FOLDER = {"training": "TrainingContainerOutputFiles", "inference": "InferenceContainerOutputFiles"}
RUNNING, PENDING, STOPPED, KILLED, ERROR = "Running", "Pending", "Stopped", "Killed", "Error"
#: how long a halt or delete waits for a start in progress before answering 409
HALT_WAIT_SECONDS = 20.0


def lifetime_unit_seconds() -> float:
    """Seconds per hour of notebook lifetime: 3600, except on test platforms, whose profile passes
    the spawners' KQI_NOTEBOOK_LIFETIME_UNIT_SECONDS to the service so both agree on the expiry."""
    try:
        return float(os.environ.get("KQI_NOTEBOOK_LIFETIME_UNIT_SECONDS") or 3600)
    except ValueError:
        return 3600.0


def server_name(notebook_id: int) -> str:
    return f"kqi-{notebook_id}"


def user_options_from_request(body: dict, tenant: Tenant) -> dict:
    """KAMONOHASHI's notebook run body → the spawners' user options (without the plan)."""
    image = body.get("containerImage") or {}
    expires_in = body.get("expiresIn", 8 * 3600)
    if not isinstance(image, dict):
        raise ValidationError({"containerImage": ["must be {registryId, image, tag}"]})
    if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in < 0:
        raise ValidationError({"expiresIn": ["must be the lifetime in seconds (0: no lifetime)"]})
    reference = None
    if image.get("image"):
        registry = next((r for r in tenant.registries if r.id == image.get("registryId")), None)
        server = registry_server(registry.host, registry.port_no) if registry else None
        reference = image_reference(server, image["image"], image.get("tag") or "latest")
    return {
        "name": body.get("name"),
        "cpu": body.get("cpu"),
        "memory": body.get("memory"),
        "gpu": body.get("gpu"),
        "lifetimeEnabled": expires_in != 0,
        "lifetimeHours": (expires_in / 3600) if expires_in else 8,
        "jupyterlabVersion": body.get("jupyterLabVersion"),
        "image": reference,
        "datasetId": body.get("dataSetId"),
        "datasetMethod": "copy" if body.get("localDataSet") else "symlink",
        "trainingIds": body.get("parentIds") or [],
        "inferenceIds": body.get("inferenceIds") or [],
        "git": body.get("gitModel"),
        "startupCommand": body.get("entryPoint"),
        "env": body.get("options") or {},
        "partition": body.get("partition"),
        "memo": body.get("memo"),
    }


class NotebookManager:
    def __init__(self, db: Session, tenant: Tenant, user: str, app):
        self.db, self.tenant, self.user, self.app = db, tenant, user, app

    def get(self, notebook_id: int) -> Notebook:
        nb = self.db.get(Notebook, notebook_id)
        if nb is None or nb.tenant_id != self.tenant.id:
            raise NotFoundError(f"No notebook has the id {notebook_id} in this tenant.")
        return nb

    def list(self) -> list[Notebook]:
        return self.search_page({}, None).rows

    def filtered(self, args: dict):
        """The SELECT of the tenant's notebooks matching the list filters (KAMONOHASHI's notebook
        SearchInputModel: id SearchLong, name/createdBy/memo/status SearchString, createdAt SearchTime)."""
        q = select(Notebook).where(Notebook.tenant_id == self.tenant.id)
        if args.get("id"):
            q = apply_number(q, Notebook.id, args["id"], "id")
        for key, column in (("name", Notebook.name), ("memo", Notebook.memo), ("createdBy", Notebook.created_by),
                            ("status", Notebook.status)):
            if args.get(key):
                q = q.where(contains(self.db, column, args[key]))
        if args.get("createdAt"):
            q = apply_date(q, Notebook.created_at, args["createdAt"], "createdAt")
        return q

    def search_page(self, args: dict, request: PageRequest | None) -> Page:
        """One page of the matching notebooks, newest first (the database filters, orders and counts)."""
        return fetch_page(self.db, self.filtered(args), [Notebook.id.desc()], request)

    def active(self) -> list[Notebook]:
        """The tenant's notebooks recorded as Running or Pending (as many as servers are up)."""
        return list(self.db.scalars(select(Notebook).where(Notebook.tenant_id == self.tenant.id,
                                                           Notebook.status.in_((RUNNING, PENDING)))).all())

    async def active_servers(self) -> dict[str, dict]:
        """Owner → {server name: server} of every hub user with a server up or starting (one hub
        request, `GET /users?state=active`, whatever the number of owners)."""
        users = await self.app.hub.list_users(state="active")
        return {u["name"]: u.get("servers") or {} for u in users}

    async def refresh_many(self, notebooks: list[Notebook], servers: dict[str, dict]) -> None:
        """refresh() each of `notebooks` from `servers` (active_servers(): an owner missing there
        has no server up)."""
        for nb in notebooks:
            await self.refresh(nb, (servers.get(nb.created_by) or {}).get(nb.server_name), fetched=True)

    # ---------------------------------------------------------------- checks
    def check(self, body: dict):
        """The notebook options as the spawner will read them; raises a 4xx error on bad input."""
        raw = user_options_from_request(body, self.tenant)
        try:
            options = parse_options(raw, infinite_allowed=self.tenant.available_infinite_time_notebook)
        except OptionsError as e:
            raise ValidationError({k: [v] for k, v in e.errors.items()})
        errors = {}
        if options.dataset_id is not None:
            dataset = self.db.get(DataSet, options.dataset_id)
            if dataset is None or dataset.tenant_id != self.tenant.id:
                errors["dataSetId"] = [f"no dataset has the id {options.dataset_id} in this tenant"]
        for field, ids, kind in (("parentIds", options.training_ids, "training"),
                                 ("inferenceIds", options.inference_ids, "inference")):
            for job_id in ids:  # the ids the tenant sees (domain/ids.py)
                if display_ids.find_job(self.db, self.tenant.id, kind, job_id) is None:
                    errors.setdefault(field, []).append(f"no {kind} has the id {job_id} in this tenant")
        if options.partition and options.partition not in tenant_partitions(self.db, self.tenant):
            errors["partition"] = [f"this tenant has no partition {options.partition!r}"]
        t = self.tenant
        for field, value, limit in (("cpu", options.cpu, t.limit_cpu), ("memory", options.memory, t.limit_memory),
                                    ("gpu", options.gpu, t.limit_gpu)):
            if limit and value > limit:
                errors[field] = [f"{value} is over the tenant quota of {limit}"]
        if "partition" not in errors:
            # what no node of the partition could ever hold is refused; what fits one starts (on
            # Kubernetes the pod waits for room until the spawner's start timeout)
            for field, message in node_fit_errors(options.cpu, options.memory, options.gpu,
                                                  tenant_nodes(self.db, self.tenant), options.partition).items():
                errors.setdefault(field, []).append(message)
        if errors:
            raise ValidationError(errors)
        return raw, options

    # ---------------------------------------------------------------- plan
    def plan(self, nb: Notebook, options) -> dict:
        store = self.app.stores.for_tenant(self.tenant)
        local = isinstance(store, LocalObjectStore)
        root = os.path.join(store.root, *self.tenant.storage_path.split("/")) if local else None
        plan = {"infiniteAllowed": self.tenant.available_infinite_time_notebook,
                "KQI_SERVER": self.app.public_url.rstrip("/") + self.app.service_prefix.rstrip("/"),
                # the notebook's tenant (KQI_TENANT_ID, KQI_TENANT_NAME, KQI_TENANT_DISPLAY_NAME): what the
                # lab extension names; the service still decides (a server's token acts only here)
                "tenant": {"id": self.tenant.id, "name": self.tenant.name,
                           "displayName": self.tenant.display_name},
                "outputSubPath": f"{self.tenant.storage_path}/{OUTPUT_FOLDER}/{nb.id}",
                "rawSubPath": f"{self.tenant.storage_path}/Data",
                "parentSubPaths": {}, "inferenceSubPaths": {}, "parentDirs": {}, "inferenceDirs": {}}
        if local:
            plan["outputDir"] = os.path.join(root, OUTPUT_FOLDER, str(nb.id))
            plan["rawDataDir"] = os.path.join(root, "Data")
        for key, ids, kind in (("parent", options.training_ids, "training"),
                               ("inference", options.inference_ids, "inference")):
            for job_id in ids:  # mounted by the id the tenant sees; stored under the job's table id
                job = display_ids.find_job(self.db, self.tenant.id, kind, job_id)
                if job is None:
                    raise ValidationError({f"{key}Ids" if key == "inference" else "parentIds":
                                           [f"no {kind} has the id {job_id} in this tenant"]})
                sub = f"{JOB_OUTPUT_FOLDER[kind]}/{job.id}"
                plan[f"{key}SubPaths"][str(job_id)] = f"{self.tenant.storage_path}/{sub}"
                if local:
                    plan[f"{key}Dirs"][str(job_id)] = os.path.join(root, *sub.split("/"))
        if options.dataset_id is not None:
            dataset = self.db.get(DataSet, options.dataset_id)
            plan["pairs"] = DataSetManager(self.db, self.tenant).path_pairs(dataset)
            if not local:
                plan["urls"] = {p["storedPath"]: store.download_url(tenant_key(self.tenant, p["storedPath"]), "f",
                                                                    "", 24 * 3600) for p in plan["pairs"]}
        if options.git:
            git = options.git
            git_id = git.get("gitId") or self.tenant.default_git_id
            server = self.db.get(GitServer, git_id) if git_id else None
            if server is None or server not in self.tenant.git_servers:
                raise ValidationError({"gitModel.gitId": ["is not a git server of this tenant"]})
            url = repository_url(server, git["owner"], git["repository"], tenant=self.tenant.name)
            token = git_token(self.db, self.user, server.id, self.app.secret_box)
            commit, _ = resolve_commit(url, git.get("branch"), git.get("commitId"), token)
            plan["git"] = {"url": url, "commit": commit, "token": None}
        environment = effective_job_environment(self.db, self.tenant)  # a company's package index, proxy
        plan["environment"] = {"env": dict(environment.env), "network": environment.network}
        return plan

    # ---------------------------------------------------------------- actions
    async def run(self, body: dict) -> Notebook:
        raw, options = self.check(body)
        display_id = next_display_id(self.db, self.tenant.id, display_ids.NOTEBOOK)
        nb = Notebook(tenant_id=self.tenant.id, display_id=display_id, name=options.name, memo=options.memo,
                      server_name="pending", request=body, dataset_id=options.dataset_id, status=PENDING,
                      created_by=self.user, modified_by=self.user)
        self.db.add(nb)
        self.db.flush()
        nb.server_name = server_name(nb.id)
        # committed before the hub starts the server: no write transaction stays open while the hub
        # works (up to its slow-spawn timeout), which on SQLite would lock every other writer out
        self.db.commit()
        try:
            await self._start(nb, raw, options)
        except BaseException:
            self.db.rollback()
            self.db.delete(nb)  # nothing started: no notebook either
            self.db.commit()
            raise
        self.db.commit()
        return nb

    async def _start(self, nb: Notebook, raw: dict, options) -> None:
        plan = self.plan(nb, options)
        # signed: the spawner takes mounts and folders only from options the service made and checked,
        # once and right away (a one-time ticket: the hub refuses every start without one)
        user_options = issue_plan(plan_key(self.app.secret_key), nb.created_by, nb.server_name,
                                  {**raw, "notebookId": nb.id, "plan": plan})
        # taken before the hub starts the server: the spawner fixes its own expiry later, so the
        # notebook is never gone before the expiry recorded here (its end is then told a lifetime end)
        began = utcnow()
        try:
            await self.app.hub.start_server(nb.created_by, nb.server_name, user_options)
        except HubError as e:
            if e.status < 500 or not e.message:
                raise
            # the spawner failed within the hub's slow-spawn timeout (a step of the runtime failed)
            raise ConflictError(f"The notebook {nb.name} did not start: {e.message}") from None
        nb.status = PENDING
        nb.status_reason = None
        nb.started_at = began
        nb.stopped_at = None
        nb.expires_at = (began + timedelta(seconds=options.lifetime_hours * lifetime_unit_seconds())
                         if options.lifetime_enabled else None)

    async def refresh(self, nb: Notebook, server: dict | None = None, fetched: bool = False) -> Notebook:
        """Bring the recorded status up to date with the hub's server."""
        if not fetched:
            model = await self.app.hub.get_user(nb.created_by)
            server = ((model or {}).get("servers") or {}).get(nb.server_name)
        if server is not None:
            status = RUNNING if server.get("ready") else PENDING
        elif nb.status in (RUNNING, PENDING):
            if nb.expires_at is not None and utcnow() >= nb.expires_at:
                status, nb.status_reason = KILLED, "its lifetime ended"
            else:
                status = STOPPED
            nb.stopped_at = nb.stopped_at or utcnow()
        else:
            status = nb.status
        recorded = self._record_usage(nb, status, server)
        if status != nb.status or recorded:
            nb.status = status
            self.db.commit()
        return nb

    def _record_usage(self, nb: Notebook, status: str, server: dict | None) -> bool:
        """The usage ledger's run of the notebook: open from the hub's start of its server while it is
        up, closed when it stopped. True when something was written."""
        from . import usage
        from .resources import notebook_node
        from ..jobs.launch import parse_container_time

        if status == RUNNING and server is not None:
            request = nb.request or {}
            row = usage.open_run(self.db, kind="notebook", ref_id=nb.id, name=f"notebook-{nb.id}",
                                 tenant=self.tenant, user=nb.created_by, cpu=request.get("cpu"),
                                 memory=request.get("memory"), gpu=request.get("gpu"), node=notebook_node(self.app),
                                 started_at=parse_container_time(server.get("started")) or nb.started_at)
            return row in self.db.new
        if status not in (RUNNING, PENDING):
            return usage.close_run(self.db, "notebook", nb.id, nb.stopped_at) is not None
        return False

    async def _stop_server(self, nb: Notebook, remove: bool = False) -> None:
        """Stop (and with remove, forget) the notebook's server. A start in progress is not cut short
        (the hub would cancel the spawner half-way, or answer 500 "pending spawn"): the stop waits
        for it up to HALT_WAIT_SECONDS, then answers 409 with what to do."""
        deadline = time.monotonic() + HALT_WAIT_SECONDS
        while True:
            server = await self._hub_server(nb)
            if not server or server.get("pending") != "spawn":
                try:
                    await self.app.hub.stop_server(nb.created_by, nb.server_name, remove=remove)
                    return
                except HubError:
                    server = await self._hub_server(nb)
                    if not server or not server.get("pending"):
                        raise  # not a start or stop in progress: a real error
            if time.monotonic() >= deadline:
                raise ConflictError(f"The notebook {nb.name} is still starting (its server is being made):"
                                    " halt it again in a moment, once it has started.")
            await asyncio.sleep(0.5)

    async def _hub_server(self, nb: Notebook) -> dict | None:
        model = await self.app.hub.get_user(nb.created_by)
        return ((model or {}).get("servers") or {}).get(nb.server_name)

    async def halt(self, nb: Notebook) -> Notebook:
        await self.refresh(nb)
        if nb.status not in (RUNNING, PENDING):  # one rule for every kind (job_status.ended_message)
            raise ConflictError(ended_message(f"notebook {nb.id}", nb.status))
        await self._stop_server(nb)
        nb.status, nb.status_reason, nb.stopped_at = KILLED, "halted by the user", utcnow()
        from . import usage

        usage.close_run(self.db, "notebook", nb.id, nb.stopped_at)
        self.db.commit()
        return nb

    async def rerun(self, nb: Notebook, changes: dict) -> Notebook:
        await self.refresh(nb)
        if nb.status in (RUNNING, PENDING):
            raise ConflictError(f"The notebook {nb.name} is {nb.status}: halt it before running it again.")
        body = {**nb.request, **{k: v for k, v in (changes or {}).items() if k in (
            "cpu", "memory", "gpu", "partition", "expiresIn", "dataSetId", "localDataSet", "jupyterLabVersion",
            "entryPoint", "options", "containerImage", "memo")}}
        raw, options = self.check({**body, "name": nb.name})
        await self._start(nb, raw, options)  # (nothing is written before the hub answers)
        nb.request = body
        nb.dataset_id = options.dataset_id
        self.db.commit()
        return nb

    async def delete(self, nb: Notebook) -> None:
        await self._stop_server(nb, remove=True)
        from . import usage

        usage.close_run(self.db, "notebook", nb.id)
        store = self.app.stores.for_tenant(self.tenant)
        self.db.delete(nb)
        self.db.commit()
        if isinstance(store, LocalObjectStore):
            # the home holds symlinks into the sandbox (dangling on this host): remove the folder
            # without following them
            shutil.rmtree(os.path.join(store.root, *tenant_key(self.tenant, f"{OUTPUT_FOLDER}/{nb.id}").split("/")),
                          ignore_errors=True)
        else:
            store.delete_prefix(tenant_key(self.tenant, f"{OUTPUT_FOLDER}/{nb.id}/"))


def hub_base_url(hub_prefix: str) -> str:
    """The hub's base URL (JupyterHub.base_url, e.g. /kqi/) from its pages' prefix (<base_url>hub/)."""
    return hub_prefix[:-len("hub/")] if hub_prefix.endswith("/hub/") else "/"


def notebook_url(nb: Notebook, base_url: str) -> str:
    """The notebook's JupyterLab through the hub's proxy, under the hub's base URL."""
    return f"{(base_url or '/').rstrip('/')}/user/{nb.created_by}/{nb.server_name}/lab"


def notebook_output(nb: Notebook, base_url: str) -> dict:
    """A notebook as the API shows it; `base_url` is the hub's base URL (see hub_base_url)."""
    def iso(value: datetime | None):
        return value.isoformat() if value else None

    remaining = None
    if nb.expires_at and nb.status in (RUNNING, PENDING):
        remaining = max(0, int((nb.expires_at - utcnow()).total_seconds()))
    request = nb.request or {}
    return {
        "id": nb.id, "displayId": nb.display_id, "name": nb.name, "memo": nb.memo, "status": nb.status,
        "statusType": {RUNNING: "Running", PENDING: "Pending", STOPPED: "Closed", KILLED: "Failed",
                       ERROR: "Error"}.get(nb.status, "None"),
        "conditionNote": nb.status_reason, "dataSetId": nb.dataset_id,
        "cpu": request.get("cpu"), "memory": request.get("memory"), "gpu": request.get("gpu"),
        "partition": request.get("partition"), "jupyterLabVersion": request.get("jupyterLabVersion"),
        "expiresIn": request.get("expiresIn"), "remainingTime": remaining,
        "parentIds": request.get("parentIds") or [], "inferenceIds": request.get("inferenceIds") or [],
        "gitModel": request.get("gitModel"), "entryPoint": request.get("entryPoint"),
        "localDataSet": bool(request.get("localDataSet")),
        "startedAt": iso(nb.started_at), "expiresAt": iso(nb.expires_at), "completedAt": iso(nb.stopped_at),
        "createdBy": nb.created_by, "createdAt": iso(nb.created_at), "modifiedBy": nb.modified_by,
        "modifiedAt": iso(nb.modified_at),
        # KQI additions: where the notebook is served (through the hub's proxy)
        "serverName": nb.server_name,
        "url": notebook_url(nb, base_url),
    }
