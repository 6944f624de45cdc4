"""Reads `initialize`, closes its stdin, answers, and keeps running: it can be sent nothing more."""
import json
import os
import sys
import time

message = json.loads(sys.stdin.readline())
os.close(0)
sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"ok": True}}) + "\n")
sys.stdout.flush()
while True:
    time.sleep(1)
