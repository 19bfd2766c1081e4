#!/usr/bin/env python3
"""Starts the standalone example services (two user instances, an order
instance, the gateway) from target/debug/examples on free ports of
127.0.0.1, and checks through the gateway that users are read, orders are
created and checked against the user service, faults are injected through
the admin endpoint, and /metrics is served. Bounded in time; every process
is stopped at the end, whatever happens."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "examples")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def wait_for(url, deadline):
    while time.time() < deadline:
        try:
            request("GET", url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def main():
    ports = {name: free_port() for name in ["user1", "user2", "order", "gateway"]}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    users = f"{url['user1']},{url['user2']}"
    commands = [
        ["user_service", "--port", str(ports["user1"])],
        ["user_service", "--port", str(ports["user2"])],
        ["order_service", "--port", str(ports["order"]), "--users", users],
        ["gateway", "--port", str(ports["gateway"]), "--users", users, "--orders", url["order"]],
    ]
    processes = []
    try:
        for command in commands:
            binary = os.path.join(EXAMPLES, command[0])
            processes.append(subprocess.Popen([binary] + command[1:], stdout=subprocess.DEVNULL))
        deadline = time.time() + 30
        for name in ports:
            wait_for(url[name] + "/metrics", deadline)

        gateway = url["gateway"]
        status, body, _ = request("GET", gateway + "/users/7")
        assert status == 200 and json.loads(body)["name"] == "user-7", (status, body)
        status, body, _ = request("GET", gateway + "/users/999")
        assert status == 404, (status, body)
        status, body, _ = request("POST", gateway + "/orders", {"user_id": 7, "item": "book"})
        assert status == 201, (status, body)
        order = json.loads(body)
        status, body, _ = request("GET", f"{gateway}/orders/{order['id']}")
        assert status == 200 and json.loads(body) == order, (status, body)
        status, body, _ = request("POST", gateway + "/orders", {"user_id": 999, "item": "book"})
        assert status == 422, (status, body)

        # One user instance fails every request: the gateway's retries and
        # outlier detection keep reads answered.
        status, body, _ = request("POST", url["user1"] + "/admin/faults", {"error_rate": 1.0})
        assert status == 200 and json.loads(body)["error_rate"] == 1.0, (status, body)
        for n in range(1, 60):
            status, body, _ = request("GET", f"{gateway}/users/{n}")
            assert status == 200, (n, status, body)

        # An order instance goes down for two seconds: orders are answered
        # (with an error while it is the only one), and served again after.
        status, body, _ = request("POST", url["order"] + "/admin/down", {"seconds": 2})
        assert status == 202, (status, body)
        time.sleep(0.5)
        status, body, _ = request("GET", f"{gateway}/orders?user_id=8")
        assert status >= 500, ("the only order instance is down", status, body)
        # A read answered before is answered again, from the cache.
        status, body, headers = request("GET", f"{gateway}/orders/{order['id']}")
        assert status == 200 and json.loads(body) == order, (status, body)
        time.sleep(2.5)
        status, body, _ = request("GET", f"{gateway}/orders?user_id=7")
        assert status == 200, ("back after two seconds", status, body)

        status, text, _ = request("GET", gateway + "/metrics")
        assert status == 200 and 'bulwark_requests_total{service="users"' in text, text[:500]
        assert "bulwark_balance_ejections_total" in text, text[:500]
        print("standalone services: users, orders, gateway, faults and metrics answer as documented")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
