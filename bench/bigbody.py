#!/usr/bin/env python3
"""Memory under huge upstream answers (issue 10): a tenant that answers every platform call with a
50 MB body (or one announcing 50 MB and sending it slowly), against `dynatrace-mcp serve`.

    bench/bigbody.py [--bin target/release/dynatrace-mcp] [--calls 12] [--mb 50]

The tenant is a few lines of Python here: its SSO endpoint issues tokens, every other route answers
200 with --mb MB of JSON whitespace, half of the answers with a Content-Length, half chunked (so the
server cannot refuse them up front and has to stop reading). Calls execute_dql, list_buckets,
find_documents and list_davis_analyzers in turn, --calls times in all, and samples the server's RSS
(VmRSS and VmHWM, the peak) after each. Exits 1 if a call took longer than its deadline, was not a
tool error with a sentence, or the peak RSS exceeded --max-mb (100).
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

CHUNK = b" " * (1 << 20)


class Tenant(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mb = 50
    served = 0

    def log_message(self, *args):  # quiet
        pass

    def _drain(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)

    def do_POST(self):  # noqa: N802
        self._drain()
        if self.path.startswith("/sso/"):
            body = json.dumps({"access_token": "bigbody-token", "token_type": "Bearer",
                               "expires_in": 300, "scope": ""}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._huge()

    def do_GET(self):  # noqa: N802
        self._huge()

    def _huge(self) -> None:
        Tenant.served += 1
        announced = Tenant.served % 2 == 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        if announced:
            self.send_header("content-length", str(self.mb << 20))
        else:
            self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for _ in range(self.mb):
                if announced:
                    self.wfile.write(CHUNK)
                else:
                    self.wfile.write(b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n")
            if not announced:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> tuple[int, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default="target/release/dynatrace-mcp")
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--max-mb", type=int, default=100)
    args = parser.parse_args()

    Tenant.mb = args.mb
    tenant = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tenant)
    tenant.daemon_threads = True
    threading.Thread(target=tenant.serve_forever, daemon=True).start()
    tenant_url = f"http://127.0.0.1:{tenant.server_address[1]}"

    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "DT_ENVIRONMENT": tenant_url,
           "DT_SSO_URL": f"{tenant_url}/sso/oauth2/token", "OAUTH_CLIENT_ID": "dt0s02.BIGBODY",
           "OAUTH_CLIENT_SECRET": "dt0s02.BIGBODY.not-a-secret", "DT_ACCOUNT_URN": "urn:dtaccount:bigbody",
           "DT_ENABLE_DAVIS_COPILOT": "1", "MCP_LOG_LEVEL": "error", "MCP_AUDIT_LOG": "off"}
    server = subprocess.Popen([args.bin, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failed = False
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.05)
        idle = rss_kb(server.pid)
        print(f"idle: RSS {idle[0] / 1024:.1f} MiB")
        tools = [("execute_dql", {"dqlStatement": "fetch logs | limit 5"}), ("list_buckets", {}),
                 ("find_documents", {}), ("list_davis_analyzers", {})]
        for i in range(args.calls):
            name, arguments = tools[i % len(tools)]
            body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                               "params": {"name": name, "arguments": arguments}})
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            started = time.perf_counter()
            conn.request("POST", "/mcp", body, {"content-type": "application/json",
                                                "accept": "application/json, text/event-stream",
                                                "mcp-protocol-version": "2025-11-25"})
            response = conn.getresponse()
            answer = response.read()
            took = time.perf_counter() - started
            result = json.loads(answer).get("result", {})
            text = (result.get("content") or [{}])[0].get("text", "")
            rss, peak = rss_kb(server.pid)
            print(f"call {i + 1:2} {name:22} {took * 1000:7.0f} ms, answer {len(answer):6} bytes, "
                  f"RSS {rss / 1024:6.1f} MiB, peak {peak / 1024:6.1f} MiB: {text[:110]}")
            if took > 26 or not result.get("isError") or len(text) < 20:
                failed = True
        rss, peak = rss_kb(server.pid)
        print(f"after {args.calls} answers of {args.mb} MB: RSS {rss / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB")
        if peak / 1024 > args.max_mb:
            failed = True
    finally:
        server.terminate()
        server.wait(timeout=30)
        tenant.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
