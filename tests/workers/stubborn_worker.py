#!/usr/bin/env python3
"""A worker that holds on: it ignores cancelJob, the shutdown request, SIGTERM and the end of
its stdin. Job `hang` writes the worker's pid to $PID_FILE and never answers (with $STRAY set,
it first starts `sleep` in a session of its own, as a daemonizing worker does, and writes that
pid to $PID_FILE.stray); job `ok` succeeds. Used to show that plugin-jobs kills what it cannot ask to stop, and that a job stays
blocked until that worker is gone.
"""
import json
import os
import signal
import subprocess
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)


def send(message):
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass


pid_file = os.environ.get("PID_FILE")
if pid_file:
    with open(pid_file + ".started", "a") as started:
        started.write(f"{os.getpid()}\n")

for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    method, mid = message.get("method"), message.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"ok": True}})
    elif method == "runJob":
        job = message["params"]["job"]
        if job["jobKey"] == "hang":
            if pid_file and os.environ.get("STRAY"):
                stray = subprocess.Popen(["sleep", "1000"], start_new_session=True)
                with open(pid_file + ".stray", "w") as out:
                    out.write(str(stray.pid))
            if pid_file:
                with open(pid_file, "w") as out:
                    out.write(str(os.getpid()))
            continue
        send({"jsonrpc": "2.0", "id": mid, "result": None})
    # cancelJob and shutdown are ignored on purpose.

# stdin closed: keep running anyway, as a careless worker would.
while True:
    time.sleep(1)
