#!/usr/bin/env python3
"""The standalone example services as a user runs them: three user and
three order instances as separate processes over one SQLite file, and the
gateway, from target/debug/examples on free ports of 127.0.0.1. Checks, in
turn:

1. through the gateway: users are read, orders made and checked against
   the user service, a failing user instance is routed around, statuses a
   client can act on (400, 404, 413, 422, a body that never arrives cut off);
2. writes under load with Idempotency-Keys while one order instance is
   killed with SIGKILL and restarted: every acknowledged order is readable
   afterwards, no id names two orders, no order is stored twice;
3. the admin door: dot segments sent through the gateway get 400 or 404,
   the admin routes are not on the public ports, and no instance's admin
   state changed;
4. listeners: 200 idle connections to the gateway are closed within its
   header timeout while a normal request still answers in time, and a
   service out of file descriptors pauses instead of spinning;
5. logs: a service whose stdout nobody reads answers as before.

Bounded in time; every process is stopped at the end, whatever happens."""

import http.client
import json
import os
import resource
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "examples")
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, timeout=5, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def raw(port, text, timeout=5):
    """Sends `text` as it is (no client normalizes the path) and returns
    the status of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(text.encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer else None


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    """One example binary, which can be killed with SIGKILL and started
    again on the same ports."""

    def __init__(self, binary, *args, nofile=None, stalled_stdout=False):
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.command = [os.path.join(EXAMPLES, binary), "--port", str(self.port)]
        if binary != "gateway":
            self.command += ["--admin-port", str(self.admin_port)]
        self.command += list(args)
        self.nofile = nofile
        self.stalled_stdout = stalled_stdout
        self.process = None

    def start(self):
        limit = self.nofile

        def limits():
            if limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        if self.stalled_stdout:
            # Logs everything, to a pipe nobody reads.
            env = {**os.environ, "RUST_LOG": "debug"}
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, env=env)
        else:
            self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, preexec_fn=limits)

    def wait_up(self, deadline):
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.command} exited with {self.process.returncode}")
            try:
                request("GET", self.url + "/metrics", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"{self.url} did not come up")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=5)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def through_the_gateway(gateway, users, orders):
    status, body, _ = request("GET", gateway + "/users/7")
    assert status == 200 and json.loads(body)["name"] == "user-7", (status, body)
    status, body, _ = request("GET", gateway + "/users/999")
    assert status == 404, (status, body)
    status, body, _ = request("GET", gateway + "/users/18446744073709551615")
    assert status == 400, ("an id out of range", status, body)
    status, body, _ = request("POST", gateway + "/orders", {"user_id": 7, "item": "book"})
    assert status == 201, (status, body)
    order = json.loads(body)
    status, body, _ = request("GET", f"{gateway}/orders/{order['id']}")
    assert status == 200 and json.loads(body) == order, (status, body)
    status, body, _ = request("POST", gateway + "/orders", {"user_id": 999, "item": "book"})
    assert status == 422, (status, body)
    # A body over 1 MiB: 413 before it is sent, to a client that asks first
    # (as curl does for large bodies); a client that sends it all may see
    # the connection reset before the answer.
    port = int(gateway.rsplit(":", 1)[1])
    status = raw(port, "POST /orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                       f"content-length: {2 << 20}\r\nexpect: 100-continue\r\n\r\n")
    assert status == 413, ("a body over 1 MiB", status)
    # A declared body that never arrives is cut off by the body timeout.
    started = time.time()
    status = raw(port, "POST /orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                       "content-length: 100\r\n\r\n{\"user", timeout=BODY_TIMEOUT + 5)
    assert status == 408 and time.time() - started < BODY_TIMEOUT + 3, ("a body that never arrives", status)

    # One user instance fails every request: retries and outlier detection
    # keep reads answered.
    status, body, _ = request("POST", users[0].admin + "/admin/faults", {"error_rate": 1.0})
    assert status == 200 and json.loads(body)["error_rate"] == 1.0, (status, body)
    for n in range(1, 60):
        status, body, _ = request("GET", f"{gateway}/users/{n}")
        assert status == 200, (n, status, body)
    status, _, _ = request("POST", users[0].admin + "/admin/faults", {})
    assert status == 200
    status, text, _ = request("GET", gateway + "/metrics")
    assert status == 200 and 'bulwark_requests_total{service="users"' in text, text[:500]
    print("through the gateway: reads, orders, a failing instance, 400/404/408/413/422 as documented")


def orders_survive_a_kill(gateway, orders, database):
    """Clients make orders with Idempotency-Keys, retrying a failed one
    with the same key as a client should; order instance 2 is killed with
    SIGKILL during the load, and started again."""
    acknowledged = {}  # key -> order
    lock = threading.Lock()
    stop = time.time() + 8
    phases = {"before": 0, "after": 0}
    killed = threading.Event()

    def client(n):
        i = 0
        while time.time() < stop:
            i += 1
            key = f"evidence-{n}-{i}"
            body = {"user_id": 1 + (n * 7 + i) % 100, "item": f"item {key}", "quantity": 1 + i % 5}
            for _ in range(20):
                try:
                    status, text, _ = request("POST", gateway + "/orders", body, headers={"idempotency-key": key})
                except OSError:
                    status = None
                if status in (200, 201):
                    with lock:
                        acknowledged[key] = (body, json.loads(text))
                        phases["after" if killed.is_set() else "before"] += 1
                    break
                time.sleep(0.1)
            else:
                raise SystemExit(f"{key}: no acknowledgement after 20 tries")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(2.5)
    victim = orders[1]
    victim.kill()
    killed.set()
    time.sleep(2.0)
    victim.start()
    victim.wait_up(time.time() + 20)
    for thread in threads:
        thread.join(timeout=60)
    assert phases["before"] > 0 and phases["after"] > 0, phases

    # Every acknowledged order is readable, from every order instance, as
    # it was acknowledged.
    by_id = {}
    for key, (body, order) in acknowledged.items():
        assert (order["user_id"], order["item"], order["quantity"]) == (body["user_id"], body["item"], body["quantity"]), (key, order)
        assert order["id"] not in by_id, ("an id names two orders", order, by_id.get(order["id"]))
        by_id[order["id"]] = order
    for n, (order_id, order) in enumerate(sorted(by_id.items())):
        instance = orders[n % len(orders)]
        status, body, _ = request("GET", f"{instance.url}/orders/{order_id}")
        assert status == 200 and json.loads(body) == order, (order_id, status, body)
    # No order is stored twice: one row per key, one row per item.
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT id, item, idempotency_key FROM orders WHERE item LIKE 'item evidence-%'").fetchall()
    items = [item for _, item, _ in rows]
    assert len(items) == len(set(items)), "an order stored twice"
    for order_id, item, key in rows:
        assert item == f"item {key}", (order_id, item, key)
        if key in acknowledged:
            assert acknowledged[key][1]["id"] == order_id, (key, order_id)
    assert set(acknowledged) <= {key for _, _, key in rows}
    print(f"SIGKILL under load: {len(acknowledged)} orders acknowledged ({phases['before']} before the kill, "
          f"{phases['after']} after), every one readable, {len(rows)} stored, none twice")


def admin_door_shut(gateway, users, orders):
    before = [request("GET", i.admin + "/admin/faults")[1] for i in users + orders]
    port = int(gateway.rsplit(":", 1)[1])
    for path in ["/users/%2e%2e/admin/down", "/users/../admin/down", "/users/%2E%2e/admin/faults",
                 "/orders/./../admin/faults", "/users/.%2e/admin/faults"]:
        body = '{"seconds": 30, "error_rate": 1.0}'
        status = raw(port, f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                           f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}")
        assert status in (400, 404), (path, status)
    for instance in users + orders:
        status, _, _ = request("POST", instance.url + "/admin/faults", {"error_rate": 1.0})
        assert status == 404, ("admin routes are not on the public port", instance.url, status)
    time.sleep(0.5)
    after = [request("GET", i.admin + "/admin/faults")[1] for i in users + orders]
    assert before == after, (before, after)
    for instance in users + orders:
        status, _, _ = request("GET", instance.url + "/metrics")
        assert status == 200, ("still up", instance.url)
    print("admin door: dot segments refused by the gateway, admin routes only on their own ports, no state changed")


def idle_connections_closed(gateway, spare_user):
    port = int(gateway.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    # A tenth of them keep-alive connections that served a request first.
    for s in idle[:20]:
        s.sendall(b"GET /users/1 HTTP/1.1\r\nhost: x\r\n\r\n")
    for s in idle[:20]:
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "a keep-alive request"
    opened = time.time()
    status, body, _ = request("GET", gateway + "/users/3", timeout=5)
    assert status == 200, ("a normal request with 200 idle connections open", status, body)
    open_sockets = set(idle)
    while open_sockets and time.time() < opened + HEADER_TIMEOUT + 1.5:
        readable, _, _ = select.select(list(open_sockets), [], [], 0.1)
        for s in readable:
            try:
                closed = s.recv(1) == b""
            except ConnectionResetError:
                closed = True
            if closed:
                open_sockets.discard(s)
    for s in idle:
        s.close()
    assert not open_sockets, f"{len(open_sockets)} of 200 idle connections still open after {HEADER_TIMEOUT + 1.5}s"
    print(f"listeners: 200 idle connections (20 kept alive after a request) closed within the "
          f"{HEADER_TIMEOUT:.0f}s header timeout, a normal request answered meanwhile")

    # A user instance allowed 64 file descriptors, offered 150 connections:
    # it pauses on EMFILE instead of spinning, and serves again once the
    # idle connections are closed.
    port = int(spare_user.url.rsplit(":", 1)[1])
    crowd = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(150)]
    time.sleep(0.5)
    cpu = cpu_seconds(spare_user.process.pid)
    time.sleep(1.0)
    used = cpu_seconds(spare_user.process.pid) - cpu
    for s in crowd:
        s.close()
    assert used < 0.3, f"{used:.2f}s of CPU in 1s out of file descriptors: the accept loop spins"
    status, _, _ = request("GET", spare_user.url + "/users/5", timeout=HEADER_TIMEOUT + 5)
    assert status == 200, status
    print(f"listeners: out of file descriptors, {used:.2f}s of CPU in 1s, and answering again afterwards")


def logs_never_block(chatty):
    """A service logging at debug level to a stdout nobody reads: once the
    pipe is full, lines are dropped, and requests are answered as before."""
    for n in range(1500):
        status, _, _ = request("GET", f"{chatty.url}/users/{1 + n % 100}", timeout=5)
        assert status == 200, (n, status)
    print("logs: 1500 requests answered by a service whose stdout is never read")


def main():
    folder = tempfile.mkdtemp(prefix="bulwark-services-")
    database = os.path.join(folder, "services.db")
    db_flag = ["--database-url", f"sqlite://{database}?mode=rwc"]
    limits = ["--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)]
    users = [Service("user_service", *db_flag, *limits) for _ in range(3)]
    user_urls = ",".join(u.url for u in users)
    orders = [Service("order_service", *db_flag, *limits, "--users", user_urls) for _ in range(3)]
    gateway = Service("gateway", "--users", user_urls, "--orders", ",".join(o.url for o in orders), *limits)
    spare_user = Service("user_service", *db_flag, *limits, nofile=64)
    chatty = Service("user_service", *db_flag, *limits, stalled_stdout=True)
    services = users + orders + [gateway, spare_user, chatty]
    try:
        for service in services:
            service.start()
        deadline = time.time() + 30
        for service in services:
            service.wait_up(deadline)
        through_the_gateway(gateway.url, users, orders)
        orders_survive_a_kill(gateway.url, orders, database)
        admin_door_shut(gateway.url, users, orders)
        idle_connections_closed(gateway.url, spare_user)
        logs_never_block(chatty)
    finally:
        for service in services:
            service.stop()
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)


if __name__ == "__main__":
    sys.exit(main())
