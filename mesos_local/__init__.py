"""`mesos-local`: the embedded default cluster (a master and agents) as child processes."""
