"""Fixtures of the end-to-end tests (see harness.py for what they hand out).

- pg_admin_url (session): PLAINT_TEST_PG_URL, the superuser URL of the test server that
  scripts/test.sh starts; when unset, a server started here with scripts/pg.sh in a temporary
  folder on a free port, stopped at the end of the session.
- plaint: a harness.Plaint with a fresh migrated database (dropped afterwards), fresh ports, and
  the teardown checks: no sanitizer report and no registered contact data in any daemon log.
- plaint_factory(admin_url=None, migrate=True): more Plaint objects, e.g. on a private server.
- private_pg: a harness.PrivatePostgres of the test's own, initialised and started; destroyed
  afterwards. For tests that stop or pause PostgreSQL without disturbing the others.
"""

import faulthandler
import os
import signal
import sys

import psycopg2
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

# A test that hangs is a failure with its stacks printed, not a stuck CI job.
TEST_DEADLINE_S = 240


@pytest.fixture(autouse=True)
def _deadline():
    limit = int(harness.timeout(TEST_DEADLINE_S))

    def on_alarm(signum, frame):
        raise TimeoutError(f"the test took longer than {limit} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    faulthandler.dump_traceback_later(limit - 5, exit=False)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def pg_admin_url():
    url = os.environ.get("PLAINT_TEST_PG_URL")
    server = None
    if not url:
        try:
            server = harness.ScriptPostgres().start()
        except Exception as e:  # noqa: BLE001 - anything here means "no server"
            pytest.fail(
                "PLAINT_TEST_PG_URL is not set, and starting a private PostgreSQL with "
                f"scripts/pg.sh failed: {e}\nhint: run the tests through scripts/test.sh, or "
                "start a server (scripts/pg.sh start) and export PLAINT_TEST_PG_URL="
                "postgresql://postgres@127.0.0.1:PORT/postgres", pytrace=False)
        url = server.admin_url
    try:
        psycopg2.connect(url, connect_timeout=10).close()
    except psycopg2.Error as e:
        if server:
            server.stop()
        pytest.fail(f"cannot connect to the test PostgreSQL at PLAINT_TEST_PG_URL={url}: {e}"
                    "hint: it must be a superuser URL of a running server (scripts/test.sh "
                    "starts one)", pytrace=False)
    yield url
    if server:
        server.stop()


@pytest.fixture
def plaint_factory(pg_admin_url, tmp_path, request):
    made = []

    def make(admin_url=None, migrate=True, drop=True):
        sub = tmp_path / f"plaint{len(made) + 1}"
        sub.mkdir()
        p = harness.Plaint(admin_url or pg_admin_url, sub, request.node.name, migrate=migrate)
        made.append((p, drop))
        return p

    yield make
    problems = []
    for p, drop in reversed(made):
        try:
            p.teardown(drop=drop)
        except BaseException as e:  # noqa: BLE001 - report every instance's problems
            problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def plaint(pg_admin_url, tmp_path, request):
    p = harness.Plaint(pg_admin_url, tmp_path, request.node.name)
    yield p
    p.teardown()


@pytest.fixture
def private_pg():
    pg = harness.PrivatePostgres()
    try:
        pg.init().start()
        yield pg
    finally:
        pg.destroy()
