"""Web UIs of the master, Marathon and the batch framework (static assets, served offline)."""
