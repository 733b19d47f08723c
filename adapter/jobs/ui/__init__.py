"""The jobs page at /ui: index.html, app.js and style.css (package data), served by `page`."""

from adapter.jobs.ui.page import build_ui_router, content_security_policy

__all__ = ["build_ui_router", "content_security_policy"]
