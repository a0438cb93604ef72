"""A third-party MCP client doing the whole MCP OAuth flow with the official Python SDK (`mcp` 2.x).

usage: $PYTHON tests/clients/oauth_client.py MCP_URL [--scope "S1 S2"] [--tool NAME [--args JSON]]
                                             [--mode auto|legacy|2026-07-28] [--user NAME] [-v]

It knows nothing about the authorization server in advance. The SDK's `OAuthClientProvider` does everything
from the server's first 401: Protected Resource Metadata (RFC 9728) from the `resource_metadata` of
`WWW-Authenticate` (else the well-known URLs), authorization server metadata (RFC 8414 / OIDC discovery),
dynamic client registration (RFC 7591, as a public client: token_endpoint_auth_method "none"), the
authorization code grant with PKCE S256 and the `resource` parameter (RFC 8707), and on a 403
`insufficient_scope` a step-up re-authorization for the union of the scopes.

The one interactive step, the user at the authorization server, is played by `Browser` below: the SDK's
redirect_handler gets the authorization URL and `Browser` follows it over plain HTTP with a cookie jar,
submitting every HTML form it meets (login: any username/password, then consent), until the server
redirects to our redirect_uri; the code, state and iss are read from that Location, nothing listens on
the redirect URI. This suits oidc-provider's devInteractions (tests/idp/oidc-provider.mjs).

--scope narrows the FIRST authorization request to these scopes (the SDK itself asks for the 401's
`scope`): use it to start with fewer scopes than a tool needs and watch the step-up. Later (step-up)
requests are left as the SDK builds them.

Then: connects (initialize or server/discover), lists the tools, optionally calls --tool with --args, and
prints one JSON summary on stdout (HTTP trace, discovered metadata, scopes, tools, result, step-up).
Exits 1 with a message on stderr on any failure (an MCP tool result with isError counts as a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import sys
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx2  # mcp 2.x uses httpx2 (an httpx fork) for HTTP
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

# Never listened on: Browser stops at the redirect to it. A loopback http URI is what oidc-provider
# accepts for a "native" client (the SDK's default application_type).
REDIRECT_URI = "http://127.0.0.1:53682/callback"
TIMEOUT_S = 60


class MemoryStorage:
    """The SDK's TokenStorage protocol, in memory (one run = one fresh client)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class FormParser(HTMLParser):
    """Collects the forms of an HTML page: [{"action", "method", "fields": {name: value}}]."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


class Browser:
    """Plays the user agent + user: the SDK's redirect_handler and callback_handler."""

    def __init__(self, user: str, first_scope: str | None, verbose: bool) -> None:
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=30)  # keeps cookies (IdP session)
        self.user = user
        self.first_scope = first_scope
        self.verbose = verbose
        self.authorizations: list[dict[str, Any]] = []  # one per authorization request the SDK made
        self.result: AuthorizationCodeResult | None = None

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"oauth_client: {msg}", file=sys.stderr)

    async def redirect_handler(self, authorization_url: str) -> None:
        url = authorization_url
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        if self.first_scope and not self.authorizations:
            # --scope: narrow the first request (keep offline_access, which the SDK adds for refresh tokens)
            extra = ["offline_access"] if "offline_access" in params.get("scope", "").split() else []
            params["scope"] = " ".join(self.first_scope.split() + extra)
            url = urlunsplit(urlsplit(url)._replace(query=urlencode(params)))
        self.authorizations.append({k: params.get(k) for k in ("scope", "resource", "client_id", "prompt")}
                                   | {"endpoint": url.split("?")[0]})
        self.log(f"authorization request {url}")
        self.result = None
        resp = await self.http.get(url)
        for _ in range(20):
            if resp.is_redirect:
                loc = urljoin(str(resp.url), resp.headers["location"])
                if loc.split("?")[0] == REDIRECT_URI:
                    q = {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}
                    if "error" in q:
                        raise RuntimeError(f"authorization server answered {q['error']}: {q.get('error_description')}")
                    self.result = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))
                    self.log(f"redirected to {REDIRECT_URI} with code, state, iss={q.get('iss')}")
                    return
                self.log(f"{resp.status_code} -> {loc}")
                resp = await self.http.get(loc)
            elif resp.status_code == 200 and "html" in resp.headers.get("content-type", ""):
                parser = FormParser()
                parser.feed(resp.text)
                form = next((f for f in parser.forms if f["method"] == "post"), None)
                if form is None:
                    raise RuntimeError(f"page {resp.url} has no form to submit: {resp.text[:500]}")
                fields = dict(form["fields"])
                if "login" in fields or "password" in fields:  # oidc-provider devInteractions login
                    fields.update(login=self.user, password="any-password")
                action = urljoin(str(resp.url), form["action"])
                self.log(f"submit form {fields.get('prompt', '?')} -> {action}")
                resp = await self.http.post(action, data=fields)
            else:
                raise RuntimeError(f"unexpected {resp.status_code} from {resp.url}: {resp.text[:500]}")
        raise RuntimeError("authorization did not reach the redirect_uri within 20 steps")

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization code (redirect_handler did not finish)")
        return self.result


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified (for the summary only); None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None


def leaf_errors(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaf_errors(sub)]
    return [e]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    browser = Browser(args.user, args.scope, args.verbose)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="dtmcp oauth_client.py",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",  # public client, PKCE only
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )

    trace: list[dict[str, Any]] = []  # every HTTP exchange, the SDK's auth requests included

    async def on_response(resp: httpx2.Response) -> None:
        entry: dict[str, Any] = {"request": f"{resp.request.method} {resp.request.url}", "status": resp.status_code}
        if "www-authenticate" in resp.headers:
            entry["www_authenticate"] = resp.headers["www-authenticate"]
        trace.append(entry)

    http = httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0, read=TIMEOUT_S),
                              event_hooks={"response": [on_response]})
    summary: dict[str, Any] = {"mcp_url": args.url}
    async with http, browser.http:
        async with Client(streamable_http_client(args.url, http_client=http), mode=args.mode) as client:
            summary["protocol_version"] = client.protocol_version
            tools = await client.list_tools()
            summary["tools"] = [t.name for t in tools.tools]
            if args.tool:
                r = await client.call_tool(args.tool, json.loads(args.args))
                summary["tool_call"] = {
                    "name": args.tool,
                    "is_error": bool(r.is_error),
                    "text": "\n".join(getattr(b, "text", "") for b in r.content),
                    "structured_content": r.structured_content,
                }

    ctx = provider.context
    prm_fetches = [t for t in trace if "oauth-protected-resource" in t["request"]]
    summary["resource_metadata_url"] = next((t["request"].split(" ", 1)[1] for t in prm_fetches if t["status"] == 200), None)
    summary["protected_resource_metadata"] = (
        ctx.protected_resource_metadata.model_dump(mode="json", exclude_none=True) if ctx.protected_resource_metadata else None)
    summary["authorization_server"] = ctx.auth_server_url
    summary["authorization_server_issuer"] = str(ctx.oauth_metadata.issuer) if ctx.oauth_metadata else None
    summary["client_id"] = ctx.client_info.client_id if ctx.client_info else None
    summary["authorizations"] = browser.authorizations
    summary["scopes_requested"] = browser.authorizations[-1]["scope"] if browser.authorizations else None
    tok = storage.tokens
    summary["scopes_granted"] = tok.scope if tok else None
    summary["refresh_token_issued"] = bool(tok and tok.refresh_token)
    summary["access_token_claims"] = jwt_claims(tok.access_token) if tok else None
    summary["step_up"] = any(t["status"] == 403 and "insufficient_scope" in t.get("www_authenticate", "") for t in trace)
    summary["http_trace"] = trace
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", metavar="MCP_URL")
    ap.add_argument("--scope", help="narrow the first authorization request to these (space-separated) scopes")
    ap.add_argument("--tool", help="tool to call after tools/list")
    ap.add_argument("--args", default="{}", help="the tool's arguments, a JSON object (default {})")
    ap.add_argument("--mode", default="auto", help="mcp Client mode: auto (default), legacy, or a version pin")
    ap.add_argument("--user", default="test-user", help="login name at the authorization server (becomes sub)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log the browser steps on stderr")
    args = ap.parse_args()
    # The SDK logs a traceback ("OAuth flow error") before it raises; the one-line FAILED message below says
    # the same. -v shows it, and the SDK's discovery debug lines.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("mcp.client.auth").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        if not isinstance(json.loads(args.args), dict):
            raise ValueError("not an object")
    except ValueError as e:
        ap.error(f"--args must be a JSON object: {e}")
    try:
        summary = asyncio.run(asyncio.wait_for(run(args), TIMEOUT_S * 2))
    except BaseException as e:  # noqa: BLE001 - report whatever failed, exit non-zero
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = "; ".join(f"{type(x).__name__}: {x}" for x in leaf_errors(e))
        print(f"oauth_client: FAILED: {msg}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    if summary.get("tool_call", {}).get("is_error"):
        print(f"oauth_client: FAILED: tool {args.tool} returned isError: {summary['tool_call']['text'][:500]}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
