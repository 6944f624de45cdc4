"""Answers `initialize`, then closes its stdout and keeps running: it can answer nothing more."""
import json
import os
import sys
import time

message = json.loads(sys.stdin.readline())
sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"ok": True}}) + "\n")
sys.stdout.flush()
os.close(1)
while True:
    time.sleep(1)
