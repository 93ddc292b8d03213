"""A running `nexus server` with example agents deployed, for tests with the official MCP client."""

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
    """Starts the server on a free port and deploys `echo` and `greeter`; yields its URL."""
    data = tmp_path_factory.mktemp("nexus-data")
    env = dict(os.environ, NEXUS_BOOTSTRAP_API_KEY=API_KEY, NEXUS__LOG__FORMAT="json")
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
    # Keep reading the log so a full pipe never blocks the server.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    for example in ("echo", "greeter"):
        nexus(url, "deploy", str(REPO / "examples" / example))
    yield url
    process.terminate()
    process.wait(timeout=30)
