#!/usr/bin/env python3
"""A worker for the randomized fault test. It runs each `runJob` in a thread of its own and
writes what it executes to a shared ledger ($LEDGER), one line per event:

    start <jobKey> <runId> <trigger> <scheduledAt>
    end <jobKey> <runId>
    OVERLAP <jobKey> <runId>

While a run executes, the worker holds an exclusive lock on $LOCK_DIR/<jobKey>.lock; a run
that finds the lock taken (by any worker process of any instance) writes OVERLAP: two
executions of one job at once. The kernel drops the lock when a process dies.

Jobs by key prefix: `ok-*` take 50-400 ms; `hang-*` take $HANG_MS and ignore cancelJob;
`crash-*` make the whole worker exit mid-run one time in four.
"""
import fcntl
import json
import os
import random
import sys
import threading
import time

LEDGER = os.environ["LEDGER"]
LOCK_DIR = os.environ["LOCK_DIR"]
HANG_S = int(os.environ.get("HANG_MS", "3000")) / 1000
out_lock = threading.Lock()

with open(os.path.join(os.path.dirname(LEDGER), "pids", str(os.getpid())), "w"):
    pass


def send(message):
    with out_lock:
        try:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            pass


def ledger(line):
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def run(mid, job):
    key, run_id = job["jobKey"], job["runId"]
    lock = open(os.path.join(LOCK_DIR, key + ".lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        ledger(f"OVERLAP {key} {run_id}")
        fcntl.flock(lock, fcntl.LOCK_EX)
    ledger(f"start {key} {run_id} {job['trigger']} {job['scheduledAt']}")
    if key.startswith("hang-"):
        time.sleep(HANG_S)
    else:
        time.sleep(random.uniform(0.05, 0.4))
        if key.startswith("crash-") and random.random() < 0.25:
            ledger(f"crash {key} {run_id}")
            os._exit(3)
    ledger(f"end {key} {run_id}")
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    send({"jsonrpc": "2.0", "id": mid, "result": None})


for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    method, mid = message.get("method"), message.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"ok": True}})
    elif method == "runJob":
        threading.Thread(target=run, args=(mid, message["params"]["job"]), daemon=True).start()
    elif method == "shutdown":
        send({"jsonrpc": "2.0", "id": mid, "result": None})
        break
