"""Forward an HTTP request to the leader and stream its answer back: how a standby Marathon or
batch framework serves clients that reached it instead of the leader.

A forwarded request carries `via_header` naming the standby; a request that already carries it
is not forwarded again (two standbys that each think the other leads would loop), and gets 503.
"""

from __future__ import annotations

import ssl

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from protos import mesos_pb2

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})


class LeaderForwarder:
    """Forwards requests to a leader's base URL (one pooled client, created on first use)."""

    def __init__(self, via_header: str, via: str,
                 verify: ssl.SSLContext | bool = True) -> None:
        """`verify` checks the leader's certificate when it serves HTTPS (ADR 0013)."""
        self.via_header = via_header
        self.via = via
        self.verify = verify
        self._client: httpx.AsyncClient | None = None

    async def forward(self, request: Request, leader_url: str) -> Response:
        """The leader's answer to `request`, streamed; 503 when it cannot be reached."""
        if self.via_header in request.headers:
            return JSONResponse({"message": "not the leader, and neither is the process that "
                                            "forwarded this request"}, status_code=503)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None),
                                             verify=self.verify)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers[self.via_header] = self.via
        upstream_request = self._client.build_request(
            request.method, leader_url + request.url.path, params=request.query_params,
            content=await request.body(), headers=headers,
        )
        try:
            upstream = await self._client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            return JSONResponse({"message": f"the leader at {leader_url} cannot be reached: "
                                            f"{exc}"}, status_code=503)
        answer_headers = {k: v for k, v in upstream.headers.items()
                          if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                 headers=answer_headers,
                                 background=BackgroundTask(upstream.aclose))


def advertised_address(leader: mesos_pb2.MasterInfo | None) -> str | None:
    """`host:port` of a leader's HTTP API as users see it (`/v2/info`, `/v2/leader`)."""
    if leader is None:
        return None
    return f"{leader.hostname or leader.address}:{leader.port}"


def forward_url(leader: mesos_pb2.MasterInfo | None, own_id: str,
                scheme: str = "http") -> str | None:
    """Where a standby forwards requests: the leader's listening address, when known and not
    this process (`own_id`)."""
    if leader is None or leader.id == own_id:
        return None
    return f"{scheme}://{leader.address}:{leader.port}"
