"""How a container's launch is planned (`plan_launch`): the options `mesos-launch` gets for
what the isolators and the user ask, and the util-linux chain where it is not built."""

from __future__ import annotations

from mesos_agent.containerizer.launcher import LaunchTools, UserIdentity, plan_launch
from mesos_agent.containers import LaunchInfo

HELPER = LaunchTools(helper="/cache/mesos-launch", unshare="/usr/bin/unshare",
                     tini="/usr/bin/tini", setpriv="/usr/bin/setpriv", mount="/usr/bin/mount")
CHAIN = LaunchTools(helper=None, unshare="/usr/bin/unshare", tini="/usr/bin/tini",
                    setpriv="/usr/bin/setpriv", mount="/usr/bin/mount")
NOBODY = UserIdentity("nobody", 65534, 65534, (65534, 100), "/nonexistent")
ISOLATED = LaunchInfo(cgroups=(("/cg/cpu/x", "pool-1"), ("/cg/memory/x", "")),
                      cgroup_writes=(("/cg/memory/x/memory.limit_in_bytes", "33554432"),),
                      cgroup_procs=("/cg/cpu/x/cgroup.procs", "/cg/memory/x/cgroup.procs"),
                      bind_mounts=(("/sandbox/tmp", "/tmp"),), pid_namespace=True,
                      environment={"MESOS_X": "1"})


def test_nothing_asked_runs_the_command_as_is() -> None:
    launch = plan_launch(["sleep", "1"], {"PATH": "/bin"}, LaunchInfo(), None, HELPER)
    assert launch.argv == ("sleep", "1")
    assert not launch.wrapped and not launch.through_init
    assert launch.environment == {"PATH": "/bin"}


def test_mesos_launch_gets_every_request_in_one_exec() -> None:
    launch = plan_launch(["sleep", "1"], {"PATH": "/bin"}, ISOLATED, NOBODY, HELPER)
    assert launch.argv == (
        "/cache/mesos-launch",
        "-k", "/cg/cpu/x", "pool-1", "-k", "/cg/memory/x", "",  # made, limited, then joined
        "-w", "/cg/memory/x/memory.limit_in_bytes", "33554432",
        "-c", "/cg/cpu/x/cgroup.procs", "-c", "/cg/memory/x/cgroup.procs",
        "-b", "/sandbox/tmp", "/tmp", "-p",
        "-u", "65534", "-g", "65534", "-G", "65534,100",
        "--", "sleep", "1")
    assert launch.wrapped and launch.through_init
    assert launch.user is None  # mesos-launch switches, not subprocess
    assert launch.environment["USER"] == "nobody" and launch.environment["MESOS_X"] == "1"


def test_a_user_alone_is_switched_by_mesos_launch() -> None:
    launch = plan_launch(["id"], {}, LaunchInfo(), NOBODY, HELPER)
    assert launch.argv[:2] == ("/cache/mesos-launch", "-u")
    assert not launch.through_init


def test_without_mesos_launch_the_util_linux_chain_does_the_same() -> None:
    launch = plan_launch(["sleep", "1"], {}, ISOLATED, NOBODY, CHAIN)
    argv = launch.argv
    assert argv[0] == "/bin/sh" and "/cg/memory/x/cgroup.procs" in argv
    assert "/usr/bin/unshare" in argv and "/usr/bin/tini" in argv
    assert "--reuid=65534" in argv
    assert argv[-2:] == ("sleep", "1")
    assert launch.through_init


def test_the_init_reports_a_signal_as_128_plus_n() -> None:
    launch = plan_launch(["sleep", "1"], {}, LaunchInfo(pid_namespace=True), None, HELPER)
    assert launch.exit_signal(128 + 15) == 15
    assert launch.exit_signal(1) is None
    plain = plan_launch(["sleep", "1"], {}, LaunchInfo(), None, HELPER)
    assert plain.exit_signal(128 + 15) is None
