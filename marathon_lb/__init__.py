"""marathon-lb: HAProxy fed by Marathon's apps and event stream (see `marathon_lb.main`)."""
