"""Errors of the hub client: what is missing, what could not be downloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._registry import ModelSpec


class NotCachedError(FileNotFoundError):
    """Files of a registered entry are missing from the cache and downloading was not allowed.

    The base of :class:`~sc_cello1.models.ModelNotCachedError` and
    :class:`~sc_cello1.data.DatasetNotCachedError`.
    """


class ModelNotCachedError(NotCachedError):
    """Files of a model are missing from the cache and downloading was not allowed."""


class DatasetNotCachedError(NotCachedError):
    """Files of a dataset are missing from the cache and downloading was not allowed."""


class ModelDownloadError(ConnectionError):
    """Files of a model or dataset could not be downloaded (server unreachable, not found, cut off)."""


class IncompleteDownloadError(OSError):
    """A download ended before the announced size; the partial file is kept to resume."""


class RevisionNotFoundError(ModelDownloadError):
    """The server does not hold the revision asked for (HTTP 404 ``RevisionNotFound``)."""


def not_cached(spec: ModelSpec, message: str) -> NotCachedError:
    """Return the error for ``spec``'s missing files: a dataset's or a model's."""
    if spec.repo_type == "dataset":
        return DatasetNotCachedError(message)
    return ModelNotCachedError(message)


def kind(spec: ModelSpec) -> str:
    """``"Dataset"`` or ``"Model"``, to start a message about ``spec``."""
    return "Dataset" if spec.repo_type == "dataset" else "Model"
