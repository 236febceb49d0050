"""`mesos-dns`: DNS-based service discovery that follows the leading master's event stream."""
