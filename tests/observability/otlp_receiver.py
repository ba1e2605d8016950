#!/usr/bin/env python3
"""A stand-in OpenTelemetry collector for the tests: accepts OTLP/HTTP JSON
POSTs (/v1/traces, /v1/logs) on 127.0.0.1 and appends each body, one JSON
document a line, to <out>/<traces|logs>.jsonl. With --hang it accepts
connections and never answers (a collector that is stuck).
Prints "listening on PORT" once it serves."""
import argparse
import http.server
import json
import os
import socket
import sys
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--hang", action="store_true")
args = parser.parse_args()
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        kind = {"/v1/traces": "traces", "/v1/logs": "logs"}.get(self.path)
        if kind is None or self.headers.get("Content-Type") != "application/json":
            self.send_response(404)
            self.end_headers()
            return
        doc = json.loads(body)  # a body that is not JSON fails the request (and the test)
        with lock, open(os.path.join(args.out, kind + ".jsonl"), "a") as f:
            f.write(json.dumps(doc) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


if args.hang:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    print("listening on", s.getsockname()[1], flush=True)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)  # never read, never answered
else:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening on", server.server_address[1], flush=True)
    server.serve_forever()
