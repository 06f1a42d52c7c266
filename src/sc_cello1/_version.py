"""The package version, on the ground floor so that no module imports the package root."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sc-cello1")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
