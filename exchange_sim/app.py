"""Assembles the simulator's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from exchange_sim.wire import rest


def create_app() -> web.Application:
    app = web.Application()
    rest.add_routes(app)
    return app
