"""Marathon's REST API as marathon-lb reads it: the apps with their tasks and health results,
and the `/v2/events` stream, from whichever of the given Marathons leads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import structlog

from marathon_lb.protocol import RESYNC_EVENTS, SseParser, leader_url

__all__ = ["CONNECTED", "MarathonClient", "MarathonUnavailable"]

log = structlog.get_logger("marathon-lb")

CONNECTED = "marathon_lb_stream_connected"
"""What `events()` yields first, once Marathon has accepted the subscription."""
APPS_QUERY = httpx.QueryParams([("embed", "apps.tasks"), ("embed", "apps.deployments")])


class MarathonUnavailable(Exception):
    """No Marathon answered."""


class MarathonClient:
    """Talks to the leading Marathon among `urls` (HTTP basic auth when `auth` is given)."""

    def __init__(self, urls: Sequence[str], *, auth: tuple[str, str] | None = None,
                 ca_cert: str | None = None, timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("no Marathon URL")
        self.urls = [url.rstrip("/") for url in urls]
        self.current = self.urls[0]
        self._client = httpx.AsyncClient(
            auth=httpx.BasicAuth(*auth) if auth else None,
            verify=ca_cert if ca_cert else True, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def find_leader(self) -> str:
        """Ask the Marathons in turn, starting with the current one, who leads; follow it."""
        start = self.urls.index(self.current) if self.current in self.urls else 0
        failures = []
        for url in self.urls[start:] + self.urls[:start]:
            try:
                answer = await self._client.get(f"{url}/v2/leader")
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {exc.__class__.__name__}")
                continue
            if answer.status_code == 200:
                try:
                    leader = answer.json().get("leader")
                except (ValueError, AttributeError):
                    failures.append(f"{url}: not Marathon's /v2/leader answer")
                    continue
                chosen = leader_url(self.urls, url, leader if isinstance(leader, str) else None)
                if chosen != self.current:
                    log.info("following Marathon", url=chosen)
                self.current = chosen
                return chosen
            failures.append(f"{url}: {answer.status_code}")
        raise MarathonUnavailable("; ".join(failures))

    async def apps(self) -> list[dict[str, Any]]:
        """Every app with its tasks (and their health results)."""
        for attempt in range(2):
            try:
                answer = await self._client.get(f"{self.current}/v2/apps", params=APPS_QUERY)
                if answer.status_code == 200:
                    apps: list[dict[str, Any]] = answer.json()["apps"]
                    return apps
                failure = f"{self.current}: {answer.status_code} {answer.text[:200]}"
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                failure = f"{self.current}: {exc.__class__.__name__} {exc}"
            if attempt == 0:
                await self.find_leader()
        raise MarathonUnavailable(failure)

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The leader's events of `RESYNC_EVENTS`, after a first `(CONNECTED, {})`; ends when
        the stream does."""
        url = await self.find_leader()
        params = httpx.QueryParams([("event_type", name) for name in RESYNC_EVENTS])
        timeout = httpx.Timeout(self._client.timeout.connect, read=None)
        async with self._client.stream("GET", f"{url}/v2/events", params=params,
                                       headers={"accept": "text/event-stream"},
                                       timeout=timeout) as response:
            if response.status_code != 200:
                body = (await response.aread())[:200].decode(errors="replace")
                raise MarathonUnavailable(f"{url}/v2/events: {response.status_code} {body}")
            yield CONNECTED, {}
            parser = SseParser()
            async for line in response.aiter_lines():
                for item in parser.feed(line.rstrip("\r")):
                    yield item

