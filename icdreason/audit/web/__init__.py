"""``icdreason audit serve``: the expert review as a web page, keyboard-first.

Another front end on the same audit: :class:`ReviewDesk` drives one :class:`~icdreason.audit.ReviewSession` per
reviewer (the terminal review's logic and store), :func:`create_app` serves it with Starlette and Jinja2 templates, and
:func:`serve` runs it with uvicorn. Nothing here is imported by ``icdreason --help`` or ``import icdreason.audit``.
"""

from .app import create_app
from .desk import ReviewDesk
from .server import bind, is_loopback, serve, url

__all__ = ["ReviewDesk", "bind", "create_app", "is_loopback", "serve", "url"]
