"""A running `nexus server` with example agents deployed, for tests with official clients."""

import asyncio
import http.server
import json
import os
import pathlib
import subprocess
import threading

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
NEXUS = os.environ.get("NEXUS_BIN", str(REPO / "target" / "debug" / "nexus"))
# The platform admin key the test server is bootstrapped with; clients send it as a bearer token.
API_KEY = "test-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def nexus(server, *args, check=True):
    env = dict(os.environ, CARGO_TARGET_DIR=str(REPO / "target" / "wasm"), NEXUS_API_KEY=API_KEY)
    result = subprocess.run(
        [NEXUS, "--server", server, *args], capture_output=True, text=True, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"nexus {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """Starts the server on a free port and deploys the agents the tests talk to; yields its URL."""
    data = tmp_path_factory.mktemp("nexus-data")
    # Push notification tests deliver to a webhook receiver on loopback.
    env = dict(os.environ, NEXUS_BOOTSTRAP_API_KEY=API_KEY, NEXUS__LOG__FORMAT="json", NEXUS__PUSH__ALLOW_PRIVATE_ADDRESSES="true")
    env.pop("NEXUS_LISTEN", None)
    process = subprocess.Popen(
        [NEXUS, "server", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    url = None
    for line in process.stderr:
        if '"listening"' in line:
            url = json.loads(line)["url"]
            break
    assert url, "the server did not start"
    for agent in ("examples/echo", "examples/greeter", "examples/streamer", "tests/guests/hostile"):
        nexus(url, "deploy", str(REPO / agent))
    yield url
    process.terminate()
    process.wait(timeout=30)


class Webhook:
    """A push notification receiver on loopback: records each POST's path, headers and JSON
    body, answers 200."""

    def __init__(self):
        self.received = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                headers = {k.lower(): v for k, v in self.headers.items()}
                received.append((self.path, headers, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def wait_for(self, done, timeout=20):
        """Waits until `done(received)` holds; returns what was received."""
        for _ in range(int(timeout / 0.05)):
            if done(list(self.received)):
                return list(self.received)
            await asyncio.sleep(0.05)
        raise AssertionError(f"webhook never got what was expected; got {self.received}")


@pytest.fixture
def webhook():
    receiver = Webhook()
    yield receiver
    receiver.server.shutdown()
