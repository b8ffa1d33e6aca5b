"""The hub process of KQI Hub: JupyterHub, made to stop on SIGINT/SIGTERM whatever the disk says.

JupyterHub's shutdown writes its database before it stops anything: Service.stop() deletes the
service's server row and commits, and cleanup() commits at the end. With the hub's disk full
that commit raises ("database or disk is full"), the shutdown task dies with it, the managed
kqi service is never stopped and the event loop never ends: SIGINT and SIGTERM did nothing.

Here a failed commit during shutdown is rolled back and logged instead (the hub brings its
database in line with what runs on its next start), the whole clean-up has a time limit, and
the event loop is stopped whatever happened. `kqi-hub` runs `python -m kqi_services.hubapp`.

While it runs, a commit that only records activity (the last_activity of a token, user or
server, written on every token check at most every activity_resolution) and fails for a full
disk is rolled back and logged, not raised: a full disk then no longer turns every token check
into "not signed in". Every other write still fails as it would.
"""
from __future__ import annotations

import asyncio

from jupyterhub.app import JupyterHub
from sqlalchemy import inspect
from traitlets import Float

from .storage.base import is_disk_full


class KqiHub(JupyterHub):
    shutdown_timeout = Float(
        30.0,
        help="Longest time (seconds) the clean-up on SIGINT/SIGTERM may take (stopping the kqi service, the"
        " proxy and the servers); past it the hub stops the kqi service and the proxy directly and exits.",
    ).tag(config=True)

    def init_db(self):
        super().init_db()
        _tolerate_failed_activity_commits(self.db, self.log)

    async def cleanup(self):
        _tolerate_failed_commits(self.db, self.log)
        try:
            await asyncio.wait_for(super().cleanup(), self.shutdown_timeout)
        except Exception as e:  # a timeout too: the hub must end anyway
            self.log.error("Clean-up failed (%s: %s): stopping the kqi service and the proxy directly",
                           type(e).__name__, e)
            await self._stop_children()

    async def _stop_children(self):
        for service in self._service_map.values():
            if service.managed and service.spawner is not None:
                try:
                    await asyncio.wait_for(service.spawner.stop(), 20)
                except Exception as e:
                    self.log.error("Could not stop the service %s: %s", service.name, e)
        if self.cleanup_proxy and self.proxy.should_start:
            try:
                await asyncio.wait_for(asyncio.ensure_future(_maybe_await(self.proxy.stop())), 10)
            except Exception as e:
                self.log.error("Could not stop the proxy: %s", e)

    async def shutdown_cancel_tasks(self, sig=None):
        try:
            await super().shutdown_cancel_tasks(sig)
        finally:
            loop = asyncio.get_event_loop()
            if loop.is_running():
                self._stop_event_loop()


async def _maybe_await(value):
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


def activity_only(db) -> bool:
    """Whether the session's pending changes are last_activity updates and nothing else."""
    if db.new or db.deleted:
        return False
    for obj in db.dirty:
        state = inspect(obj)
        if any(attr.key != "last_activity" and attr.history.has_changes() for attr in state.attrs):
            return False
    return True


def _tolerate_failed_activity_commits(db, log) -> None:
    commit = db.commit

    def commit_activity_or_raise():
        only_activity = activity_only(db)
        try:
            commit()
        except Exception as e:
            if not (only_activity and is_disk_full(e)):
                raise
            log.warning("Activity not recorded: the hub database's disk is full (%s)", e)
            db.rollback()

    db.commit = commit_activity_or_raise


def _tolerate_failed_commits(db, log) -> None:
    """From now on (shutdown) a commit that fails is rolled back and logged, not raised."""
    if getattr(db, "_kqi_tolerant", False):
        return
    commit = db.commit

    def tolerant_commit():
        try:
            commit()
        except Exception as e:
            log.warning("The hub database could not be written while stopping (%s); going on", e)
            try:
                db.rollback()
            except Exception:
                pass

    db.commit = tolerant_commit
    db._kqi_tolerant = True


main = KqiHub.launch_instance

if __name__ == "__main__":
    main()
