"""What a new installation starts with.

On the first start (no tenant yet) the service creates the first tenant with the system
administrator as its member and administrator. In the local profile it also registers
one of each thing a user needs to work right away: the local object store, a container
registry, this machine as a node with its partition, and a git server whose repositories
are the bare repositories under <data dir>/git/<tenant name>/<owner>/<repository>.git: each
tenant's own folder, served over smart HTTP by gitserver.py.

On every start, repositories of the old shared layout (<data dir>/git/<owner>/<repository>.git,
before repositories belonged to a tenant) are moved into the folder of the first tenant that
uses their git server, each move logged (gitserver.migrate_flat_layout).
"""
from __future__ import annotations

import os
import socket

from sqlalchemy import func, select

from .db.models import GitServer, Node, Registry, Storage, Tenant

GIT_SERVICE_LOCAL = 6
REGISTRY_DOCKER_HUB = 1


def machine_memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def local_defaults(data_dir: str) -> dict:
    """The rows the local profile starts with (pure, for the tests)."""
    return {
        "storage": Storage(
            name="local", kind="local", server_url="file://" + os.path.join(data_dir, "store"),
            created_by="system", modified_by="system",
        ),
        "registry": Registry(
            name="docker-hub", host="registry-1.docker.io", service_type=REGISTRY_DOCKER_HUB,
            api_url="https://registry.hub.docker.com/", registry_url="https://registry-1.docker.io/",
            created_by="system", modified_by="system",
        ),
        "git": GitServer(
            name="local", service_type=GIT_SERVICE_LOCAL,
            repository_url="file://" + os.path.join(data_dir, "git"),
            api_url=None, created_by="system", modified_by="system",
        ),
        "node": Node(
            name=socket.gethostname() or "localhost", memo="this machine", partition="local",
            access_level=2, cpu=float(os.cpu_count() or 1), memory=machine_memory_gib(), gpu=0,
            created_by="system", modified_by="system",
        ),
    }


async def seed(app) -> None:
    await _seed(app)
    from .gitserver import migrate_all

    with app.session_factory() as db:
        migrate_all(db, app.log)


async def _seed(app) -> None:
    with app.session_factory() as db:
        if db.scalar(select(func.count()).select_from(Tenant)):
            return
        storage = registry = git = None
        if app.profile == "local":
            rows = local_defaults(app.data_dir)
            for kind in ("storage", "registry", "git"):
                existing = db.scalar(select(type(rows[kind])).where(type(rows[kind]).name == rows[kind].name))
                if existing is None:
                    db.add(rows[kind])
                else:
                    rows[kind] = existing
            if not db.scalar(select(func.count()).select_from(Node)):
                db.add(rows["node"])
            db.flush()
            storage, registry, git = rows["storage"], rows["registry"], rows["git"]
        await app.hub.ensure_tenant(app.first_tenant_name, admins=[app.admin_user])
        await app.hub.add_group_users(app.first_tenant_name, [app.admin_user])
        tenant = Tenant(
            name=app.first_tenant_name, display_name=app.first_tenant_display_name,
            storage=storage, default_git_id=git.id if git else None,
            default_registry_id=registry.id if registry else None,
            git_servers=[git] if git else [], registries=[registry] if registry else [],
            available_infinite_time_notebook=True, created_by="system", modified_by="system",
        )
        db.add(tenant)
        db.commit()
        app.log.info("Created the first tenant %s with %s as its administrator",
                     app.first_tenant_name, app.admin_user)
