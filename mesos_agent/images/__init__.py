"""Container images: Docker and OCI images named as Docker names them, pulled from a registry
or a directory of archives into the agent's store, layers shared (issue 19)."""

from mesos_agent.images.manifest import ImageConfig, ImageError, Platform, machine_platform
from mesos_agent.images.reference import ImageReference, InvalidReference, parse_reference
from mesos_agent.images.sources import (
    ArchiveSource,
    ImageSource,
    RegistryCredentials,
    RegistrySource,
    load_docker_config,
)
from mesos_agent.images.store import Image, ImageStore, PruneResult

__all__ = [
    "ArchiveSource",
    "Image",
    "ImageConfig",
    "ImageError",
    "ImageReference",
    "ImageSource",
    "ImageStore",
    "InvalidReference",
    "Platform",
    "PruneResult",
    "RegistryCredentials",
    "RegistrySource",
    "load_docker_config",
    "machine_platform",
    "parse_reference",
]
