"""An OTLP/HTTP trace receiver for the tests: it decodes what the server exports with the official
OpenTelemetry protobuf definitions (the `opentelemetry-proto` package) and keeps the spans.

    python receiver.py            # prints "port <n>" once it listens on 127.0.0.1:<n>

POST /v1/traces  an ExportTraceServiceRequest (Content-Type application/x-protobuf), answered
                 with an ExportTraceServiceResponse as the OTLP specification says; anything else
                 (another content type, a body that does not decode) is refused and remembered.
GET  /spans      every span received so far, as JSON (ids in lowercase hex, attributes as plain
                 values, the resource's attributes and the request's headers with each span).
GET  /problems   what was refused, as a JSON list (empty when all was well).
GET  /summary    how many spans came, in how many exports, by kind (for the benchmark).
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

LOCK = threading.Lock()
SPANS = []
PROBLEMS = []
EXPORTS = []


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(any_value, kind)
    if kind == "array_value":
        return [value(x) for x in v.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.values}
    if kind == "bytes_value":
        return v.hex()
    return v


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def span_json(span, resource, scope, headers):
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": Span.SpanKind.Name(span.kind),
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": attributes(span.attributes),
        "status": {
            "code": Status.StatusCode.Name(span.status.code),
            "message": span.status.message,
        },
        "links": [
            {"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in span.links
        ],
        "resource": resource,
        "scope": scope,
        "headers": headers,
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, status, problem):
        with LOCK:
            PROBLEMS.append(problem)
        self.answer(status, json.dumps({"error": problem}).encode(), "application/json")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            return self.refuse(404, f"POST to {self.path}, not /v1/traces")
        content_type = self.headers.get("Content-Type", "")
        if content_type != "application/x-protobuf":
            return self.refuse(415, f"Content-Type {content_type!r}, not application/x-protobuf")
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as e:
            return self.refuse(400, f"the body is no ExportTraceServiceRequest: {e}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        spans = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope.name
                for span in scope_spans.spans:
                    spans.append(span_json(span, resource, scope, headers))
        with LOCK:
            SPANS.extend(spans)
            EXPORTS.append(len(spans))
        self.answer(
            200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
        )

    def do_GET(self):
        with LOCK:
            if self.path == "/spans":
                body = json.dumps(SPANS)
            elif self.path == "/problems":
                body = json.dumps(PROBLEMS)
            elif self.path == "/summary":
                kinds = {}
                for span in SPANS:
                    kinds[span["kind"]] = kinds.get(span["kind"], 0) + 1
                body = json.dumps({"spans": len(SPANS), "exports": len(EXPORTS), "by_kind": kinds})
            else:
                return self.answer(404, b"{}", "application/json")
        self.answer(200, body.encode(), "application/json")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
