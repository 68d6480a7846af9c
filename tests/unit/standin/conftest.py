"""Fixtures for the stand-in server's unit tests (helpers live in standin_helpers.py)."""

import pytest

from standin_helpers import start_server


@pytest.fixture
def launch(tmp_path):
    """Start stand-in servers; each one is killed with its process group at teardown."""
    servers = []

    def start(*args, **kwargs):
        servers.append(start_server(tmp_path / f"server{len(servers)}", *args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
