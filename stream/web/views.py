"""HTTP views (SPEC §5); the worker's own health first."""

from __future__ import annotations

from faust.web import Request, Response, View

from stream.app import app


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok", "app": app.conf.id})
