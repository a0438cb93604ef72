"""Drive dynatrace-mcp with the official Python MCP client (`mcp` 2.x), no hand-written JSON-RPC.

usage: $PYTHON tests/clients/python_client.py --binary BIN --url DEMO_URL
                                              [--auth-url SERVE_URL --auth-token TOKEN] [--log-dir DIR]

Runs the same checks in both protocol eras over both transports:
  transports: Streamable HTTP against DEMO_URL (`BIN demo`), and stdio (spawns `BIN demo --stdio`)
  modes:      legacy      initialize handshake                 -> protocol 2025-11-25
              2026-07-28  stateless era, version pinned (no probe)  -> protocol 2026-07-28
              auto        server/discover probe (real negotiation)   -> protocol 2026-07-28
With --auth-url, also checks a `serve` instance that has MCP_AUTH_TOKEN set: the right token (as
`Authorization: Bearer` and as `X-MCP-Auth-Token`) works, a missing or wrong one fails cleanly.

Prints one line per check (`ok` / `FAIL`) and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from typing import Any, Callable

import anyio
import httpx2  # mcp 2.x uses httpx2 (not httpx) for its HTTP transport
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

EXPECTED_TOOLS = ["get_environment_info", "execute_dql", "verify_dql"]
SERVER_NAME = "Dynatrace MCP Server"
ERROR_LOGS = 'fetch logs | filter loglevel == "ERROR" | limit 3'
INVALID_DQL = "fetch logs | filter"
# mode -> the protocol version the session must end up with
MODES = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28", "auto": "2026-07-28"}
CALL_TIMEOUT_S = 30

failures: list[str] = []
passed = 0


def check(label: str, ok: bool, detail: Any = "") -> bool:
    global passed
    if ok:
        passed += 1
        print(f"ok   {label}", flush=True)
    else:
        failures.append(label)
        print(f"FAIL {label}: {detail}", flush=True)
    return ok


def leaf_errors(e: BaseException) -> list[BaseException]:
    """The real exceptions inside (nested) anyio exception groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaf_errors(sub)]
    return [e]


def describe(e: BaseException) -> str:
    return "; ".join(f"{type(x).__name__}: {x}" for x in leaf_errors(e))


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def exercise(label: str, make_target: Callable[[], Any], mode: str) -> None:
    """All tool checks on one connection."""
    p = f"[{label} {mode}]"
    try:
        with anyio.fail_after(CALL_TIMEOUT_S * 3):
            async with Client(make_target(), mode=mode) as c:
                tools = await c.list_tools()
                # Checked after a first exchange: with a pinned version the client adopts it without a probe,
                # so what this proves there is that the server served a stateless 2026-07-28 request.
                how = {"legacy": "initialize", "auto": "server/discover", "2026-07-28": "pinned, no probe"}[mode]
                check(f"{p} protocol version {MODES[mode]} ({how})", c.protocol_version == MODES[mode],
                      f"negotiated {c.protocol_version!r}")
                if mode != "2026-07-28":  # a pinned version synthesises the discover result: nothing to check
                    name = c.server_info.name if c.server_info else None
                    check(f"{p} server identifies as {SERVER_NAME!r}", name == SERVER_NAME, f"serverInfo {c.server_info!r}")
                    check(f"{p} server declares the tools capability", c.server_capabilities.tools is not None,
                          c.server_capabilities)

                names = [t.name for t in tools.tools]
                # A subset check: more tools are being added; these three must always be there.
                check(f"{p} tools/list has {', '.join(EXPECTED_TOOLS)}", set(EXPECTED_TOOLS) <= set(names), names)
                by_name = {t.name: t for t in tools.tools}
                check(f"{p} execute_dql and verify_dql publish an outputSchema",
                      all(by_name.get(n) is not None and by_name[n].output_schema for n in ("execute_dql", "verify_dql")),
                      {n: bool(t.output_schema) for n, t in by_name.items()})

                # The client also validates structuredContent against the published outputSchema.
                r = await c.call_tool("execute_dql", {"dqlStatement": ERROR_LOGS})
                sc = r.structured_content or {}
                records = sc.get("records")
                check(f"{p} execute_dql ERROR logs: no error", not r.is_error, text_of(r)[:300])
                check(f"{p} execute_dql ERROR logs: status succeeded", sc.get("status") == "succeeded", sc.get("status"))
                check(f"{p} execute_dql ERROR logs: 3 records, all loglevel ERROR",
                      isinstance(records, list) and len(records) == 3
                      and all(rec.get("loglevel") == "ERROR" for rec in records),
                      records if not isinstance(records, list) else [rec.get("loglevel") for rec in records])
                check(f"{p} execute_dql ERROR logs: returnedRecords matches",
                      isinstance(records, list) and sc.get("returnedRecords") == len(records), sc.get("returnedRecords"))
                check(f"{p} execute_dql ERROR logs: text block carries the records",
                      "Query finished: 3 records" in text_of(r), text_of(r)[:200])

                r = await c.call_tool("verify_dql", {"dqlStatement": INVALID_DQL})
                sc = r.structured_content or {}
                check(f"{p} verify_dql invalid statement: valid=false with an ERROR notification",
                      not r.is_error and sc.get("valid") is False
                      and any(n.get("severity") == "ERROR" for n in sc.get("notifications", [])),
                      (r.is_error, sc, text_of(r)[:200]))

                r = await c.call_tool("execute_dql", {"dqlStatement": "fetch logs", "recordLimit": 0})
                txt = text_of(r)
                check(f"{p} execute_dql recordLimit=0: isError with a helpful text",
                      r.is_error is True and "recordLimit" in txt and "between 1 and 10000" in txt,
                      (r.is_error, txt[:300]))
    except BaseException as e:  # noqa: BLE001 - one failed connection must not stop the others
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        check(f"{p} connection and calls completed", False, describe(e))


async def exercise_environments(label: str, make_target: Callable[[], Any], mode: str) -> None:
    """`demo --environments 3`: the published enum, a fan-out (its structuredContent validated by the client
    against the published outputSchema), one named environment, and list_environments."""
    p = f"[{label} {mode} 3 environments]"
    try:
        with anyio.fail_after(CALL_TIMEOUT_S * 3):
            async with Client(make_target(), mode=mode) as c:
                tools = {t.name: t for t in (await c.list_tools()).tools}
                env = (tools["execute_dql"].input_schema.get("properties") or {}).get("environment") or {}
                enum = (env.get("anyOf") or [{}])[0].get("enum")
                check(f"{p} execute_dql publishes environment as an enum of the aliases and *",
                      enum == ["prod", "staging", "dev", "*"], env)
                check(f"{p} list_environments is listed", "list_environments" in tools, sorted(tools))

                r = await c.call_tool("list_problems", {"environment": "*"})
                parts = (r.structured_content or {}).get("environments") or []
                check(f"{p} list_problems environment=*: three labelled answers, all ok",
                      not r.is_error and [x.get("environment") for x in parts] == ["prod", "staging", "dev"]
                      and all(x.get("status") == "ok" for x in parts),
                      (r.is_error, parts[:1], text_of(r)[:200]))

                r = await c.call_tool("get_environment_info", {"environment": "staging"})
                check(f"{p} get_environment_info environment=staging reaches tenant sandbox2",
                      (r.structured_content or {}).get("environmentId") == "sandbox2", text_of(r)[:200])

                r = await c.call_tool("list_environments", {})
                listed = (r.structured_content or {}).get("environments") or []
                check(f"{p} list_environments: three, all reachable",
                      [x.get("alias") for x in listed] == ["prod", "staging", "dev"]
                      and all(x.get("reachable") for x in listed), listed)
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        check(f"{p} connection and calls completed", False, describe(e))


def auth_target(url: str, headers: dict[str, str]) -> Callable[[], Any]:
    def make() -> Any:
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
        return streamable_http_client(url, http_client=http)
    return make


async def auth_checks(url: str, token: str) -> None:
    good = {
        "Authorization: Bearer": {"Authorization": f"Bearer {token}"},
        "X-MCP-Auth-Token": {"X-MCP-Auth-Token": token},
    }
    for mode in ("legacy", "2026-07-28"):
        for style, headers in good.items():
            p = f"[http+auth {mode}] {style}"
            try:
                with anyio.fail_after(CALL_TIMEOUT_S):
                    async with Client(auth_target(url, headers)(), mode=mode) as c:
                        tools = await c.list_tools()
                        r = await c.call_tool("execute_dql", {"dqlStatement": "fetch logs | limit 1"})
                check(f"{p}: tools/list and tools/call work",
                      set(EXPECTED_TOOLS) <= {t.name for t in tools.tools} and not r.is_error,
                      ([t.name for t in tools.tools], r.is_error))
            except BaseException as e:  # noqa: BLE001
                check(f"{p}: tools/list and tools/call work", False, describe(e))

    bad = {"no token": {}, "wrong token": {"Authorization": "Bearer wrong-token-wrong-token-123"}}
    for mode in ("legacy", "2026-07-28", "auto"):
        for what, headers in bad.items():
            p = f"[http+auth {mode}] {what}"
            try:
                with anyio.fail_after(CALL_TIMEOUT_S):
                    async with Client(auth_target(url, headers)(), mode=mode) as c:
                        await c.list_tools()
                check(f"{p}: refused", False, "tools/list succeeded without a valid token")
            except BaseException as e:  # noqa: BLE001
                errors = leaf_errors(e)
                clean = any(isinstance(x, MCPError) and x.error.code == -32001 and "Unauthorized" in x.error.message
                            for x in errors)
                check(f"{p}: refused cleanly (MCPError -32001 Unauthorized)", clean, describe(e))


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="path to the dynatrace-mcp binary (for stdio)")
    ap.add_argument("--url", required=True, help="MCP URL of a running `demo` instance")
    ap.add_argument("--auth-url", help="MCP URL of a `serve` instance with MCP_AUTH_TOKEN set")
    ap.add_argument("--auth-token", default=os.environ.get("MCP_AUTH_TOKEN"), help="its token (default $MCP_AUTH_TOKEN)")
    ap.add_argument("--log-dir", help="where the stdio servers' stderr goes (default: a temp dir)")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="dtmcp-pyclient-")
    stdio_log_path = os.path.join(log_dir, "python-stdio-server.stderr")

    for mode in MODES:
        await exercise("http", lambda: args.url, mode)

    with open(stdio_log_path, "a") as errlog:
        params = StdioServerParameters(command=binary, args=["demo", "--stdio"], env={"MCP_LOG_LEVEL": "warn"})
        for mode in MODES:
            await exercise("stdio", lambda: stdio_client(params, errlog=errlog), mode)
        several = StdioServerParameters(command=binary, args=["demo", "--stdio", "--environments", "3"],
                                        env={"MCP_LOG_LEVEL": "warn"})
        for mode in MODES:
            await exercise_environments("stdio", lambda: stdio_client(several, errlog=errlog), mode)

    if args.auth_url:
        if not args.auth_token:
            check("auth checks have a token (--auth-token or $MCP_AUTH_TOKEN)", False, "missing")
        else:
            await auth_checks(args.auth_url, args.auth_token)

    print(f"python client: {passed} passed, {len(failures)} failed", flush=True)
    if failures:
        print(f"(stdio server stderr: {stdio_log_path})", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
