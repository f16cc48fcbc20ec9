"""The acceptance run's only door to Buildkite: a small client of the REST API (v2).

Pipelines (create, read, delete), builds (create, read, cancel) with their jobs, and the
organization's connected agents. The API access token goes into the ``Authorization`` header
and nowhere else: not into ``repr``, not into an error message. Reads are retried on 429 and
5xx answers (``Retry-After`` honoured) by urllib3's ``Retry``; writes are not, so a pipeline or
a build is never created twice.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_API_URL = "https://api.buildkite.com/v2"
TIMEOUT_S = 30.0
AGENTS_PER_PAGE = 100
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class BuildkiteError(RuntimeError):
    """A REST call failed: which call and the API's message, never the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BuildkiteRest:
    """Calls the REST API of one organization with one access token."""

    def __init__(self, api_url: str, organization: str, token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.organization = organization
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.headers["Accept"] = "application/json"
        retry = Retry(
            total=5,
            backoff_factor=1.0,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=("GET",),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self._session.mount("http://", HTTPAdapter(max_retries=retry))
        self._session.mount("https://", HTTPAdapter(max_retries=retry))
        if urlsplit(self.api_url).hostname in LOOPBACK_HOSTS:
            # An emulator on this machine: never through an environment proxy.
            self._session.trust_env = False

    def __repr__(self) -> str:
        return f"BuildkiteRest({self.api_url!r}, organization={self.organization!r})"

    # --- pipelines -----------------------------------------------------------------------

    def create_pipeline(
        self, name: str, repository: str, configuration: str, cluster_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "repository": repository,
            "configuration": configuration,
        }
        if cluster_id:
            body["cluster_id"] = cluster_id
        return self._call("POST", "pipelines", body=body)

    def pipeline_exists(self, slug: str) -> bool:
        return self._call("GET", "pipelines", slug, missing_ok=True) is not None

    def delete_pipeline(self, slug: str) -> bool:
        """Delete the pipeline; False when it was already gone."""
        return self._call("DELETE", "pipelines", slug, missing_ok=True) is not None

    # --- builds --------------------------------------------------------------------------

    def create_build(
        self, slug: str, message: str, *, commit: str = "HEAD", branch: str = "main"
    ) -> dict[str, Any]:
        body = {"commit": commit, "branch": branch, "message": message}
        return self._call("POST", "pipelines", slug, "builds", body=body)

    def build(self, slug: str, number: int) -> dict[str, Any]:
        return self._call("GET", "pipelines", slug, "builds", str(number))

    def cancel_build(self, slug: str, number: int) -> bool:
        """Cancel the build; False when it had already finished (the API answers 422)."""
        try:
            self._call("PUT", "pipelines", slug, "builds", str(number), "cancel")
        except BuildkiteError as error:
            if error.status == 422:
                return False
            raise
        return True

    # --- agents --------------------------------------------------------------------------

    def agents(self) -> list[dict[str, Any]]:
        """Every connected agent of the organization (all pages)."""
        agents: list[dict[str, Any]] = []
        url: str | None = self._url("agents") + f"?per_page={AGENTS_PER_PAGE}"
        while url is not None:
            response = self._send("GET", url, None, "list agents")
            agents.extend(_json(response, "list agents"))
            url = response.links.get("next", {}).get("url")
        return agents

    # --- transport -----------------------------------------------------------------------

    def _url(self, *segments: str) -> str:
        path = "/".join(quote(segment, safe="") for segment in segments)
        return f"{self.api_url}/organizations/{quote(self.organization, safe='')}/{path}"

    def _call(self, method: str, *segments: str, body: Any = None, missing_ok: bool = False) -> Any:
        what = f"{method} /organizations/{self.organization}/{'/'.join(segments)}"
        response = self._send(method, self._url(*segments), body, what, missing_ok=missing_ok)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code == 204 or not response.content:
            return {}
        return _json(response, what)

    def _send(
        self, method: str, url: str, body: Any, what: str, *, missing_ok: bool = False
    ) -> requests.Response:
        try:
            response = self._session.request(method, url, json=body, timeout=TIMEOUT_S)
        except requests.RequestException as error:
            raise BuildkiteError(f"Buildkite REST {what} failed: {type(error).__name__}") from None
        if response.status_code >= 400 and not (missing_ok and response.status_code == 404):
            raise BuildkiteError(
                f"Buildkite REST {what} answered HTTP {response.status_code}: {_message(response)}",
                status=response.status_code,
            )
        return response


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise BuildkiteError(f"Buildkite REST {what} answered with a non-JSON body") from None


def _message(response: requests.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.reason or "no message"
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return document["message"]
    return response.reason or "no message"
