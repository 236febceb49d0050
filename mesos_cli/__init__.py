"""The `mesos` command-line tool."""
