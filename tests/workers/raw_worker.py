#!/usr/bin/env python3
"""A worker written without the SDK: raw JSON-RPC lines on stdin/stdout.

Proves the protocol works for any language. Job `ok` succeeds and logs a line, job `fail` fails
with a message, job `echo` logs the payload it was given (as sorted JSON), job `flaky` fails its first attempt and succeeds on a retry (logging the attempt
and the run it retries), job `flood` sends 100,000 empty log lines and one with a level of almost 1 MiB
before it succeeds; job `malformed` answers with an error object that has no message; job `latin1`
fails with a message holding a byte that is not UTF-8; job `huge` answers with a 2 MiB result
(over the host's 1 MiB limit on a line); job `records` prints records of its own to stdout, with
an `"id"` that is its call's (and a line quoting a whole failing answer), before it succeeds; job `bigrecord` answers with a 2 MiB result
holding an `"id"` of its own, the answer's id last; job `bigmethod` answers with a 2 MiB result
holding a `"method"` of its own, `"jsonrpc"` last; job `bigbom` with a 2 MiB answer behind a
byte order mark; any other key is an invalid-params error.
"""
import json
import sys


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    method, mid = message.get("method"), message.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid,
              "result": {"ok": True, "supportedMethods": ["runJob", "shutdown"]}})
    elif method == "runJob":
        job = message["params"]["job"]
        if job["jobKey"] == "ok":
            send({"jsonrpc": "2.0", "method": "log",
                  "params": {"runId": job["runId"], "level": "info",
                             "message": "python ran " + job["trigger"]}})
            send({"jsonrpc": "2.0", "id": mid, "result": None})
        elif job["jobKey"] == "flood":
            empty = json.dumps({"jsonrpc": "2.0", "method": "log",
                                "params": {"runId": job["runId"], "level": "info",
                                           "message": ""}}) + "\n"
            sys.stdout.write(empty * 100000)
            send({"jsonrpc": "2.0", "method": "log",
                  "params": {"runId": job["runId"], "level": "x" * ((1 << 20) - 200),
                             "message": "huge level"}})
            send({"jsonrpc": "2.0", "id": mid, "result": None})
        elif job["jobKey"] == "echo":
            send({"jsonrpc": "2.0", "method": "log",
                  "params": {"runId": job["runId"], "level": "info",
                             "message": json.dumps(job.get("payload"), sort_keys=True)}})
            send({"jsonrpc": "2.0", "id": mid, "result": None})
        elif job["jobKey"] == "flaky":
            send({"jsonrpc": "2.0", "method": "log",
                  "params": {"runId": job["runId"], "level": "info",
                             "message": "attempt %s retryOf %s" % (job.get("attempt"),
                                                                   job.get("retryOf"))}})
            if job.get("attempt", 1) == 1:
                send({"jsonrpc": "2.0", "id": mid,
                      "error": {"code": -32002, "message": "first attempts fail"}})
            else:
                send({"jsonrpc": "2.0", "id": mid, "result": None})
        elif job["jobKey"] == "malformed":
            # An error without a message: not a valid response, but it answers this call.
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": 1}})
        elif job["jobKey"] == "latin1":
            line = json.dumps({"jsonrpc": "2.0", "id": mid,
                               "error": {"code": -32002, "message": "caf\u00e9 failed"}},
                              ensure_ascii=False)
            sys.stdout.buffer.write(line.encode("latin-1") + b"\n")
            sys.stdout.flush()
        elif job["jobKey"] == "notjson":
            # An answer whose id can be read, in a line that is not JSON.
            sys.stdout.write('{"jsonrpc":"2.0","id":%s,"result":nul}\n' % json.dumps(mid))
            sys.stdout.flush()
        elif job["jobKey"] == "records":
            # Output of the worker's own, as print() debugging writes it: not answers.
            for record in ({"id": mid, "customer": "c1"}, {"id": mid, "result": "exported"}):
                sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.write('exported row {"id": %s, "customer": "c2"}\n' % json.dumps(mid))
            # A line that quotes a whole message is not a broken one run into another.
            sys.stdout.write('quoted {"jsonrpc":"2.0","id":%s,"error":{"code":1,"message":"q"}}\n'
                             % json.dumps(mid))
            send({"jsonrpc": "2.0", "id": mid, "result": None})
        elif job["jobKey"] == "bigrecord":
            send({"jsonrpc": "2.0", "result": {"id": 999, "rows": "x" * (2 << 20)}, "id": mid})
        elif job["jobKey"] == "bigmethod":
            # Its "jsonrpc" after the bulk, and a "method" of its own in the result near the end.
            send({"result": {"rows": "x" * (2 << 20), "method": "GET"}, "id": mid,
                  "jsonrpc": "2.0"})
        elif job["jobKey"] == "bigbom":
            # Behind a byte order mark.
            line = json.dumps({"jsonrpc": "2.0", "id": mid, "result": "x" * (2 << 20)})
            sys.stdout.buffer.write(b"\xef\xbb\xbf" + line.encode() + b"\n")
            sys.stdout.flush()
        elif job["jobKey"] == "huge":
            send({"jsonrpc": "2.0", "id": mid, "result": "x" * (2 << 20)})
        elif job["jobKey"] == "fail":
            send({"jsonrpc": "2.0", "id": mid,
                  "error": {"code": -32002, "message": "python says no"}})
        else:
            send({"jsonrpc": "2.0", "id": mid,
                  "error": {"code": -32602, "message": "unknown job " + job["jobKey"]}})
    elif method == "shutdown":
        send({"jsonrpc": "2.0", "id": mid, "result": None})
        break
