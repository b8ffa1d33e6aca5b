"""Training: the guide's 学習管理 over the job engine (/training/...)."""
from __future__ import annotations

from ..permissions import Access
from .base import ApiError, BaseAPIHandler
from .jobs_common import job_routes, kind_classes


class TensorBoardHandler(BaseAPIHandler):
    """DELETE /training/{id}/tensorboard: stop a training's TensorBoard (none run on this platform yet)."""

    access = {"DELETE": Access.TENANT_USER}

    def delete(self, training_id):
        raise ApiError(404, f"No TensorBoard runs for training {self.int_path(training_id)}.")


CLASSES = kind_classes("training")

default_handlers = job_routes("training", CLASSES) + [
    (r"/training/([0-9]+)/tensorboard", TensorBoardHandler),
]
