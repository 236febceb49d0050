"""Web UIs of the master, Marathon and the batch framework (static assets, served offline)."""

from webui.routes import ui_routes

__all__ = ["ui_routes"]
