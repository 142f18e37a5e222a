"""What a web process holds, as typed aiohttp AppKeys (set up in web/app.py)."""

from __future__ import annotations

import asyncpg
import jinja2
from aiohttp import web

from web.live import EventHub, SharedRender

pool_key = web.AppKey("pool", asyncpg.Pool)
env_key = web.AppKey("templates", jinja2.Environment)
hub_key = web.AppKey("hub", EventHub)
render_key = web.AppKey("dashboard_render", SharedRender)
