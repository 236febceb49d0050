"""The OCI runtime configuration of image containers and Mesos' merge of image and command
(`oci_spec`, pure)."""

from __future__ import annotations

import pytest

from mesos_agent.containerizer.image_runtime import choose_backend
from mesos_agent.containerizer.oci_spec import (
    SANDBOX_PATH,
    ContainerUser,
    container_command,
    parse_passwd_user,
    runtime_spec,
)
from mesos_agent.containers import Volume
from mesos_agent.images.manifest import ImageConfig, ImageError
from protos import mesos_pb2

IMAGE = ImageConfig(entrypoint=("/bin/app", "--serve"), cmd=("--port", "80"),
                    env=("PATH=/opt/bin:/bin", "MODE=image"), working_dir="/srv")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n"
GROUP = "root:x:0:\nweb:x:1000:\nstaff:x:50:web,other\n"


@pytest.mark.parametrize(("command", "argv"), [
    (mesos_pb2.CommandInfo(value="echo hi"), ("/bin/sh", "-c", "echo hi")),
    (mesos_pb2.CommandInfo(shell=False, value="/bin/ls", arguments=["ls", "-l"]),
     ("/bin/ls", "-l")),
    (None, ("/bin/app", "--serve", "--port", "80")),
    (mesos_pb2.CommandInfo(shell=False), ("/bin/app", "--serve", "--port", "80")),
    (mesos_pb2.CommandInfo(shell=False, arguments=["--port", "8080"]),
     ("/bin/app", "--serve", "--port", "8080")),
], ids=["shell", "program", "image", "no-value", "arguments-after-entrypoint"])
def test_the_command_as_mesos_merges_it_with_the_image(
        command: mesos_pb2.CommandInfo | None, argv: tuple[str, ...]) -> None:
    assert container_command(command, IMAGE) == argv


def test_no_command_anywhere_is_refused() -> None:
    with pytest.raises(ImageError, match="no Entrypoint or Cmd"):
        container_command(None, ImageConfig())
    assert container_command(None, ImageConfig(cmd=("sh",))) == ("sh",)


@pytest.mark.parametrize(("spec", "user"), [
    ("root", ContainerUser(0, 0, (), "/root")),
    ("web", ContainerUser(1000, 1000, (50,), "/home/web")),
    ("1000", ContainerUser(1000, 1000, (50,), "/home/web")),
    ("web:staff", ContainerUser(1000, 50, (), "/home/web")),
    ("4242:4243", ContainerUser(4242, 4243, (), "/")),
    ("4242", ContainerUser(4242, 4242, (), "/")),
])
def test_users_are_read_in_the_images_files(spec: str, user: ContainerUser) -> None:
    assert parse_passwd_user(spec, PASSWD, GROUP) == user


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ImageError, match="user 'alice' does not exist in the image"):
        parse_passwd_user("alice", PASSWD, GROUP)
    with pytest.raises(ImageError, match="group 'wheel' does not exist in the image"):
        parse_passwd_user("web:wheel", PASSWD, GROUP)


def test_runtime_spec() -> None:
    spec = runtime_spec(
        argv=("/bin/app",), environment={"MODE": "task", "MESOS_SANDBOX": SANDBOX_PATH},
        image=IMAGE, user=ContainerUser(1000, 1000, (50,), "/home/web"),
        mounts=[Volume("/agent/sandbox", SANDBOX_PATH),
                Volume("/etc/hosts", "/etc/hosts", read_only=True)],
        cgroups_path="/mesos/c1", open_files=(1024, 4096))
    process = spec["process"]
    assert process["args"] == ["/bin/app"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [50]}
    assert process["cwd"] == "/srv"
    env = dict(item.split("=", 1) for item in process["env"])
    assert env == {"PATH": "/opt/bin:/bin", "MODE": "task", "HOME": "/home/web",
                   "MESOS_SANDBOX": SANDBOX_PATH}
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]
    assert "CAP_SYS_ADMIN" not in process["capabilities"]["bounding"]
    binds = [m for m in spec["mounts"] if m["type"] == "bind"]
    assert binds == [
        {"destination": SANDBOX_PATH, "type": "bind", "source": "/agent/sandbox",
         "options": ["rbind", "rprivate", "rw"]},
        {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts",
         "options": ["rbind", "rprivate", "ro"]}]
    linux = spec["linux"]
    assert linux["cgroupsPath"] == "/mesos/c1"
    assert {n["type"] for n in linux["namespaces"]} == {"pid", "ipc", "mount"}  # host network
    assert runtime_spec(argv=("x",), environment={}, image=ImageConfig(),
                        user=ContainerUser(0, 0), mounts=[], cgroups_path="/c",
                        open_files=(1, 1))["process"]["cwd"] == SANDBOX_PATH


def test_the_provisioner_backend_follows_the_flag_else_the_kernel() -> None:
    with_overlay = "nodev\tsysfs\nnodev\toverlay\n\text4\n"
    without = "nodev\tsysfs\n\text4\n"
    assert choose_backend("", with_overlay) == "overlay"
    assert choose_backend("", without) == "copy"
    assert choose_backend("copy", with_overlay) == "copy"
    assert choose_backend("overlay", without) == "overlay"  # asked for: its mount says why
