"""The OCI runtime configuration (`config.json`) of an image container, and how its command
and user follow from the image's configuration and the task's `CommandInfo` (pure).

The command, as Mesos merges them: a shell command (`shell`, the default, with a `value`) runs
as `/bin/sh -c value` in the image; `shell: false` with a `value` runs that program with the
task's `arguments` (argv[0] included); a task with no command runs the image's Entrypoint
followed by the task's `arguments` if it gives any (Marathon's `args`), else by the image's Cmd.
The container shares the host's network and host name (tasks' ports as for plain tasks), has
its own pid, mount and IPC namespaces, Docker's default capabilities, and joins the cgroups the
agent's isolators made (`cgroupsPath`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesos_agent.containers import Volume
from mesos_agent.images.manifest import ImageConfig, ImageError
from protos import mesos_pb2

__all__ = [
    "SANDBOX_PATH",
    "ContainerUser",
    "container_command",
    "parse_passwd_user",
    "runtime_spec",
]

SANDBOX_PATH = "/mnt/mesos/sandbox"
"""Where the task's sandbox is inside its container (`MESOS_SANDBOX`), as in Mesos."""
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CAPABILITIES = [  # Docker's default set
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
           "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
           "/sys/firmware"]
_READ_ONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass(frozen=True, slots=True)
class ContainerUser:
    """Whom the command runs as inside the container."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def container_command(command: mesos_pb2.CommandInfo | None, image: ImageConfig
                      ) -> tuple[str, ...]:
    """The argv the container runs (see the module's docstring); raises ImageError when
    neither the task nor the image gives one."""
    if command is not None and command.value:
        shell = command.shell if command.HasField("shell") else True
        if shell:
            return ("/bin/sh", "-c", command.value)
        return (command.value, *command.arguments[1:])
    arguments = tuple(command.arguments) if command is not None else ()
    argv = image.entrypoint + (arguments if arguments else image.cmd)
    if not argv:
        raise ImageError("the task gives no command and the image has no Entrypoint or Cmd")
    return argv


def parse_passwd_user(spec: str, passwd: str, group: str) -> ContainerUser:
    """The user `spec` names (Docker's `User`: `name`, `uid`, `name:group`, `uid:gid`), read
    in the image's `/etc/passwd` and `/etc/group` contents; raises ImageError when a name is
    not there."""
    user_part, _, group_part = spec.partition(":")
    users = [line.split(":") for line in passwd.splitlines() if line.count(":") >= 6]
    groups = [line.split(":") for line in group.splitlines() if line.count(":") >= 3]
    entry = next((u for u in users if u[0] == user_part or (user_part.isdigit()
                                                           and u[2] == user_part)), None)
    if entry is not None:
        uid, gid, home, name = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    elif user_part.isdigit():
        uid, gid, home, name = int(user_part), int(user_part), "/", ""
    else:
        raise ImageError(f"user {user_part!r} does not exist in the image (its /etc/passwd)")
    if group_part:
        found = next((g for g in groups if g[0] == group_part), None)
        if found is not None:
            gid = int(found[2])
        elif group_part.isdigit():
            gid = int(group_part)
        else:
            raise ImageError(f"group {group_part!r} does not exist in the image (its /etc/group)")
    extra = tuple(sorted({int(g[2]) for g in groups
                          if name and name in g[3].split(",") and g[2].isdigit()} - {gid}))
    return ContainerUser(uid, gid, extra, home)


def runtime_spec(
    *,
    argv: Sequence[str],
    environment: Mapping[str, str],
    image: ImageConfig,
    user: ContainerUser,
    mounts: Sequence[Volume],
    cgroups_path: str,
    open_files: tuple[int, int],
) -> dict[str, Any]:
    """The OCI runtime configuration (version 1.0) of a container whose root filesystem is
    `rootfs` next to it, with `mounts` (absolute container paths) bound in. `environment`
    (the task's) is laid over the image's `Env`."""
    env = {"PATH": _DEFAULT_PATH, **image.environment(), "HOME": user.home, **environment}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": user.uid, "gid": user.gid,
                     **({"additionalGids": list(user.additional_gids)}
                        if user.additional_gids else {})},
            "args": list(argv),
            "env": [f"{name}={value}" for name, value in env.items()],
            "cwd": image.working_dir or SANDBOX_PATH,
            "capabilities": {kind: list(_CAPABILITIES)
                             for kind in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": open_files[0],
                         "hard": open_files[1]}],
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            *({"destination": mount.container_path, "type": "bind", "source": mount.host_path,
               "options": ["rbind", "rprivate", "ro" if mount.read_only else "rw"]}
              for mount in mounts),
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "namespaces": [{"type": kind} for kind in ("pid", "ipc", "mount")],
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READ_ONLY),
        },
    }
