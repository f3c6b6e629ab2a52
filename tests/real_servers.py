"""Real servers on 127.0.0.1, free ports, for the sink tests (no mocks)."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class WebhookServer:
    """A stdlib HTTP server that records what it receives, fails the next N requests with 500, or stalls
    every request until released."""

    def __init__(self):
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.fail_next = 0
        self.release = threading.Event()
        self.release.set()
        self.stalled = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with server._lock:
                    failing = server.fail_next > 0
                    server.fail_next -= failing
                if not server.release.is_set():
                    server.stalled.set()
                    server.release.wait(30)
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with server._lock:
                    server.received.append(json.loads(body))
                    server.headers.append(dict(self.headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ingest"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def rows(self) -> list[dict]:
        with self._lock:
            return [row for body in self.received for row in body["readings"]]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    """A throwaway PostgreSQL 15 cluster in a temp dir, run as the `postgres` user (the tests run as root),
    unix socket in the temp dir, listening on 127.0.0.1 only. ``root`` must be reachable by that user
    (pytest's tmp_path is under a root-only directory; use tempfile.mkdtemp)."""

    def __init__(self, root: Path):
        if not (POSTGRES_BIN / "initdb").exists():
            raise RuntimeError(f"{POSTGRES_BIN}/initdb is missing: `make test` installs postgresql-15 (target system-packages)")
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        subprocess.run(["chown", "postgres", str(root)], check=True)
        self._as_postgres([str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"])
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {root} -c fsync=off"
        self._as_postgres([str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                           "-l", str(root / "log"), "-w", "start"])
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _as_postgres(self, command: list[str]) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr or done.stdout}")

    def stop(self) -> None:
        self._as_postgres([str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])


MOSQUITTO = Path("/usr/sbin/mosquitto")


class MosquittoBroker:
    """Debian's mosquitto on 127.0.0.1 on a free port, config, persistence and log in ``root`` (a temp dir).

    ``users`` {name: password} turns anonymous access off; ``tls`` (ca, cert, key paths) adds a TLS listener on
    ``tls_port``. ``stop()`` ends it with SIGTERM, which saves its persistent sessions; ``start()`` (again) brings
    it back on the same ports, sessions and queued messages restored."""

    def __init__(self, root: Path, users: dict[str, str] | None = None, tls: tuple[Path, Path, Path] | None = None):
        if not MOSQUITTO.exists():
            raise RuntimeError(f"{MOSQUITTO} is missing: `make test` installs mosquitto (target system-packages)")
        self.root = root
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {root}/",
                 f"log_dest file {root}/log", "log_type all", "user root", "max_queued_messages 1000000"]
        if users:
            passwords = root / "passwords"
            for index, (name, password) in enumerate(users.items()):
                subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if index == 0 else []), str(passwords), name,
                                password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            ca, cert, key = tls
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        self.config = root / "mosquitto.conf"
        self.config.write_text("per_listener_settings false\n" + "\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        for _ in range(200):  # up to 10 s
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.process.returncode}: {(self.root / 'log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                threading.Event().wait(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def self_signed_certificates(root: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it, made with openssl: (ca, cert, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=root)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=battsim test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out",
            "server.csr")
    (root / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days",
            "2", "-extfile", "san.ext", "-out", "server.crt")
    return root / "ca.crt", root / "server.crt", root / "server.key"
