"""The end-to-end harness of Plaint: real PostgreSQL, real daemons as processes, real ZeroMQ.

Used by tests/e2e/test_*.py through the fixtures in conftest.py. What it provides:

- free_port(), timeout(seconds): fresh TCP ports; timeouts scaled by
  PLAINT_TEST_TIMEOUT_MULTIPLIER (default 1; sanitizer runs use 3).
- Daemon: one build/bin/<binary> process with its stdout and stderr in a log file.
- Plaint: what the `plaint` fixture hands a test: a fresh, migrated database, fresh ports, the
  daemons' environment, ZeroMQ and SQL helpers, and the checks run at teardown (no sanitizer
  report and no customer contact data in any daemon log). start_intake, start_classifier and
  start_routing start a daemon and wait until it takes work; config_copy copies deploy/config
  into the test's folder, for a test to edit and point PLAINT_CONFIG_DIR at.
- PrivatePostgres: a PostgreSQL cluster of one test's own (initdb, start, stop), for tests that
  stop or pause the database.
- validate(message, schema_name), validate_event(event): JSON Schema checks against proto/schemas.
- Plaint.start_desk() and http(addr, method, path, body): plaint-desk on a fresh PLAINT_HTTP_ADDR,
  and one HTTP request to it (any status returned as an HttpResponse, never through a proxy).

Every timeout a caller passes to this module (wait_until, wait_log, submit, send_raw,
receive_events, ctl, wait_exit) is scaled by the multiplier here; Daemon.stop(timeout=10) is
not, since 10 s is the contract's limit for a clean shutdown. Each daemon started through a
Plaint gets its own metrics port (PLAINT_METRICS_ADDR), so that several can run side by side.

Settings read from the environment:
  PLAINT_BIN_DIR                  the binaries (default: <repo>/build/bin)
  PLAINT_TEST_PG_URL              admin (superuser) URL of the test PostgreSQL server
  PLAINT_TEST_TIMEOUT_MULTIPLIER  scales every timeout of the harness and the tests
"""

import datetime
import json
import os
import pathlib
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import psycopg2
import pytest
import zmq

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "proto" / "schemas"
CONFIG_DIR = ROOT / "deploy" / "config"
PG_BIN = pathlib.Path(os.environ.get("PLAINT_PG_BIN", "/usr/lib/postgresql/15/bin"))

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
# What intake logs when a batch (submit) connection is ready.
BATCH_READY = '"msg":"database ready","app":"plaint-intake"}'


def bin_dir():
    return pathlib.Path(os.environ.get("PLAINT_BIN_DIR") or ROOT / "build" / "bin")


def binary_path(binary):
    path = bin_dir() / binary
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{path} does not exist or is not executable; build first "
            f"(cmake -S {ROOT} -B {ROOT}/build && cmake --build {ROOT}/build) "
            f"or point PLAINT_BIN_DIR at the binaries",
            pytrace=False,
        )
    return str(path)


# ---------------------------------------------------------------------------- time and ports


def multiplier():
    try:
        value = float(os.environ.get("PLAINT_TEST_TIMEOUT_MULTIPLIER") or 1)
    except ValueError:
        pytest.fail("PLAINT_TEST_TIMEOUT_MULTIPLIER must be a number", pytrace=False)
    return value if value > 0 else 1.0


def timeout(seconds):
    """seconds scaled by PLAINT_TEST_TIMEOUT_MULTIPLIER."""
    return seconds * multiplier()


_scale = timeout  # for functions whose parameter is named timeout


_ports_lock = threading.Lock()
_ports_given = set()


def _ephemeral_range():
    try:
        low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A TCP port free on 127.0.0.1 now, never handed out twice by this process. It is taken
    below the kernel's ephemeral range when there is room: an outgoing connection made between
    this call and the daemon's bind cannot take it then."""
    low, _ = _ephemeral_range()
    with _ports_lock:
        for attempt in range(500):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                port = random.randrange(10000, low) if low > 12000 and attempt < 400 else 0
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                port = s.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no free port found")


def now_rfc3339():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def wait_until(predicate, timeout, message, interval=0.02):
    """Polls predicate until it returns something truthy, which is returned; fails the test with
    message after timeout seconds (scaled)."""
    limit = _scale(timeout)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {limit:.1f} s: {message}", pytrace=False)
        time.sleep(interval)


# ---------------------------------------------------------------------------- JSON Schemas

_STORE = {p.as_uri(): json.loads(p.read_text(encoding="utf-8")) for p in SCHEMAS.rglob("*.json")}
_validators = {}


def schema_path(name):
    """proto/schemas/NAME.json, or proto/schemas/events/NAME.json for an event type."""
    for path in (SCHEMAS / f"{name}.json", SCHEMAS / "events" / f"{name}.json"):
        if path.exists():
            return path
    raise KeyError(f"no schema named {name} in {SCHEMAS}")


def validator(name):
    """A Draft 2020-12 validator for one schema whose relative $refs resolve to sibling files."""
    if name in _validators:
        return _validators[name]
    from jsonschema import Draft202012Validator

    path = schema_path(name)
    schema = _STORE[path.as_uri()]
    fmt = Draft202012Validator.FORMAT_CHECKER
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource

        registry = Registry().with_resources(
            (uri, Resource.from_contents(contents, default_specification=_draft202012()))
            for uri, contents in _STORE.items()
        )
        schema = dict(schema, **({"$id": path.as_uri()} if "$id" not in schema else {}))
        v = Draft202012Validator(schema, registry=registry, format_checker=fmt)
    except ImportError:  # Debian 12: jsonschema 4.10
        from jsonschema import RefResolver

        resolver = RefResolver(base_uri=path.as_uri(), referrer=schema, store=_STORE)
        v = Draft202012Validator(schema, resolver=resolver, format_checker=fmt)
    _validators[name] = v
    return v


def _draft202012():
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def validate(message, name):
    """Fails the test unless message validates against proto/schemas/NAME.json."""
    errors = sorted(validator(name).iter_errors(message), key=lambda e: list(e.absolute_path))
    if errors:
        lines = "\n".join(f"  {e.json_path}: {e.message}" for e in errors[:20])
        pytest.fail(f"message does not validate against {name}.json:\n{lines}\n"
                    f"message: {json.dumps(message, ensure_ascii=False)[:2000]}", pytrace=False)


def validate_event(event):
    """An event validates against event.json, envelope.json and its own type's schema."""
    validate(event, "envelope")
    validate(event, "event")
    try:
        schema_path(event["type"])
    except KeyError:
        return
    validate(event, event["type"])


# ---------------------------------------------------------------------------- processes


def _scan_sanitizer(text):
    return [m for m in SANITIZER_MARKERS if m in text]


class Daemon:
    """One process of build/bin/<binary>; stdout and stderr go to log_path."""

    def __init__(self, binary, env, log_path, args=()):
        self.binary = binary
        self.env = dict(env)
        self.args = list(args)
        self.log_path = pathlib.Path(log_path)
        self.proc = None
        self.returncode = None
        self.metrics_addr = None
        self._log = None

    def __repr__(self):
        pid = self.proc.pid if self.proc else None
        return f"<Daemon {self.binary} pid={pid} log={self.log_path}>"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        assert self.proc is None, f"{self} already started"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [binary_path(self.binary), *self.args],
            env=self.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=str(ROOT), start_new_session=True,
        )
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """The log's JSON lines, parsed (other lines, such as sanitizer reports, are skipped)."""
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, substring, timeout=10, count=1):
        """Waits until the log holds substring (count times; timeout scaled); returns the
        count-th matching line. Fails at once if the process exits first."""
        limit = _scale(timeout)
        deadline = time.monotonic() + limit
        while True:
            exited = not self.alive()  # before reading: its last words are in the file then
            text = self.log_text()
            if text.count(substring) >= count:
                lines = [l for l in text.splitlines() if substring in l]
                return lines[count - 1] if len(lines) >= count else substring
            if exited:
                pytest.fail(f"{self.binary} exited with status {self.proc.poll()} before logging "
                            f"{substring!r}; log:\n{self.tail()}", pytrace=False)
            if time.monotonic() >= deadline:
                pytest.fail(f"{self.binary} did not log {substring!r} (x{count}) within "
                            f"{limit:.1f} s; log:\n{self.tail()}", pytrace=False)
            time.sleep(0.02)

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status. Fails the test when the process takes longer than
        timeout seconds (the contract's 10 s), after killing it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                pytest.fail(f"{self.binary} (pid {self.proc.pid}) did not exit within {timeout} s "
                            f"of SIGTERM; log:\n{self.tail()}", pytrace=False)
        self._close_log()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close_log()
        if self.proc is not None:
            self.returncode = self.proc.returncode

    def wait_exit(self, timeout=10):
        """Waits (timeout scaled) for the process to exit by itself; returns its status."""
        try:
            return self.proc.wait(_scale(timeout))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.binary} still runs after {_scale(timeout):.1f} s; log:\n"
                        f"{self.tail()}", pytrace=False)

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None


# ---------------------------------------------------------------------------- PostgreSQL


def _as_postgres(cmd):
    """cmd as the postgres OS user when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def database_url(admin_url, dbname):
    """admin_url (a URI or a key=value conninfo) pointed at database dbname."""
    if re.match(r"^postgres(ql)?://", admin_url):
        parts = urllib.parse.urlsplit(admin_url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))
    return f"{admin_url} dbname={dbname}"


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, under /tmp (the postgres user must reach it), on
    a free port. fsync is off: nothing here measures durability against power loss."""

    def __init__(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="plaint-e2e-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgresql.log"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *cmd, check=True):
        res = subprocess.run(_as_postgres(cmd), capture_output=True, text=True,
                             timeout=timeout(90), cwd=str(self.dir))
        if check and res.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            pytest.fail(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}{res.stderr}\n"
                        f"{log}", pytrace=False)
        return res

    def init(self):
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        conf = (f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = 100\n"
                "fsync = off\nfull_page_writes = off\nlogging_collector = off\n")
        subprocess.run(_as_postgres(["tee", "-a", str(self.data / "postgresql.conf")]),
                       input=conf, text=True, check=True, stdout=subprocess.DEVNULL)
        return self

    def start(self):
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "60", "-s", "start")
        return self

    def stop(self, mode="fast"):
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                  "-s", "stop")

    def running(self):
        res = self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return res.returncode == 0

    def pids(self):
        """The postmaster and every backend of this cluster."""
        data = os.path.realpath(self.data)
        out = []
        for p in pathlib.Path("/proc").glob("[0-9]*"):
            try:
                if os.readlink(p / "cwd") == data:
                    out.append(int(p.name))
            except OSError:
                pass
        return out

    def destroy(self):
        if self.data.exists() and self.running():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "-s", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class ScriptPostgres:
    """The server scripts/pg.sh starts in a temporary folder, when PLAINT_TEST_PG_URL is unset."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="plaint-e2e-pgsh-", dir="/tmp")
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_sh(self, cmd):
        env = dict(os.environ, PLAINT_PG_PORT=str(self.port))
        return subprocess.run([str(ROOT / "scripts" / "pg.sh"), cmd, self.dir], env=env,
                              capture_output=True, text=True, timeout=180)

    def start(self):
        res = self._pg_sh("start")
        if res.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"scripts/pg.sh start {self.dir} failed ({res.returncode}):\n"
                               f"{res.stdout}{res.stderr}")
        return self

    def stop(self):
        self._pg_sh("stop")
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------- the fixture's object


class NoReply(AssertionError):
    """No reply on the submit socket within the timeout."""


SOCKET_KINDS = ("REQ", "DEALER", "DEALER_NODELIM")


def _json_forms(s):
    """The forms a string can take in a JSON log line."""
    forms = {s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1]}
    return {f for f in forms if f}


class Plaint:
    """One test's Plaint: a fresh database on the admin server, fresh ports, daemons, helpers."""

    def __init__(self, admin_url, tmp_path, name="e2e", migrate=True):
        self.admin_url = admin_url
        self.tmp_path = pathlib.Path(tmp_path)
        self.name = name
        self.daemons = []
        self.contact_data = set()
        self.problems = []
        self.databases = []
        self.ports = self.new_ports()
        self._ctx = zmq.Context()
        self._subs = []
        self._sql_conn = None
        self._sql_lock = threading.Lock()
        self._counter = 0
        self._counter_lock = threading.Lock()
        self.schema_version = None
        self.db_url = None
        try:
            self.db_url = self.create_database(migrate=migrate)
        except BaseException:
            self._drop_databases([])
            self._ctx.destroy(linger=0)
            raise

    # ----- setup and teardown

    def _admin(self, sql):
        conn = psycopg2.connect(self.admin_url, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self, migrate=True):
        """A new database on the admin server (dropped at teardown); migrated with plaintctl
        migrate unless migrate=False. Returns its URL."""
        slug = re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")[:36]
        dbname = f"e2e_{slug}_{secrets.token_hex(4)}"
        self._admin(f'CREATE DATABASE "{dbname}"')
        self.databases.append(dbname)
        url = database_url(self.admin_url, dbname)
        if migrate:
            res = self.ctl("migrate", db_url=url)
            if res.returncode != 0:
                pytest.fail(f"plaintctl migrate failed ({res.returncode}):\n{res.stdout}"
                            f"{res.stderr}", pytrace=False)
            m = re.search(r"version (\d+)", res.stdout)
            if m:
                self.schema_version = int(m.group(1))
        return url

    def teardown(self, drop=True):
        problems = list(self.problems)
        for d in self.daemons:
            if d.alive():
                rc = d.stop(timeout=15)
                # SIGTERM's default action before the daemon set its handlers (it logs "started"
                # right after): it was still starting and held nothing.
                if rc == -signal.SIGTERM and '"msg":"started"' not in d.log_text():
                    continue
                if rc != 0:
                    problems.append(f"{d.binary} (pid {d.pid}) was still running at teardown and "
                                    f"exited {rc} on SIGTERM (want 0); log: {d.log_path}")
            else:
                d._close_log()
        for s in self._subs:
            s.close(linger=0)
        self._ctx.destroy(linger=0)
        if self._sql_conn is not None:
            try:
                self._sql_conn.close()
            except psycopg2.Error:
                pass
        for d in self.daemons:
            text = d.log_text()
            found = _scan_sanitizer(text)
            if found:
                problems.append(f"{d.binary} log {d.log_path} holds a sanitizer report "
                                f"({', '.join(found)}):\n" + _around(text, found[0]))
            leaked = sorted({s for s in self.contact_data for f in _json_forms(s) if f in text})
            if leaked:
                problems.append(f"{d.binary} log {d.log_path} holds customer contact data or "
                                f"complaint text: {leaked[:5]}")
        if drop:
            self._drop_databases(problems)
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)

    def _drop_databases(self, problems):
        for dbname in self.databases:
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            except psycopg2.Error as e:
                problems.append(f"could not drop database {dbname}: {e}")
        self.databases = []

    # ----- settings and processes

    @staticmethod
    def new_ports():
        return {k: free_port() for k in ("submit", "events", "classify", "route")}

    @staticmethod
    def endpoints(ports):
        """The endpoint settings for a dict of ports (as ports)."""
        return {
            "PLAINT_SUBMIT_ENDPOINT": f"tcp://127.0.0.1:{ports['submit']}",
            "PLAINT_EVENTS_ENDPOINT": f"tcp://127.0.0.1:{ports['events']}",
            "PLAINT_CLASSIFY_ENDPOINT": f"tcp://127.0.0.1:{ports['classify']}",
            "PLAINT_ROUTE_ENDPOINT": f"tcp://127.0.0.1:{ports['route']}",
        }

    def env(self, **extra):
        """The daemons' environment: ours, without inherited PLAINT_* settings, plus extra (a
        value of None removes a variable)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PLAINT_") or k.startswith("PLAINT_TEST_")}
        env.update({
            **({"PLAINT_DATABASE_URL": self.db_url} if self.db_url else {}),
            **self.endpoints(self.ports),
            "PLAINT_LOG_LEVEL": "debug",
            "PLAINT_CONFIG_DIR": str(CONFIG_DIR),
            # No fixed metrics port: daemon() gives each daemon a fresh one.
            "PLAINT_METRICS_ADDR": "",
        })
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def _log_path(self, binary):
        with self._counter_lock:
            self._counter += 1
            n = self._counter
        return self.tmp_path / f"{n:02d}-{binary}.log"

    def daemon(self, binary, *args, **extra):
        """A Daemon (not started) with env(**extra); it is stopped and checked at teardown.
        Unless extra says otherwise, it serves its metrics on a fresh port (d.metrics_addr)."""
        if binary != "plaintctl" and "PLAINT_METRICS_ADDR" not in extra:
            extra["PLAINT_METRICS_ADDR"] = f"127.0.0.1:{free_port()}"
        d = Daemon(binary, self.env(**extra), self._log_path(binary), args)
        d.metrics_addr = d.env.get("PLAINT_METRICS_ADDR") or None
        self.daemons.append(d)
        return d

    def start_daemon(self, binary, *args, **extra):
        return self.daemon(binary, *args, **extra).start()

    def start_intake(self, **extra):
        """Starts plaint-intake and waits until its event hub runs (and, briefly, until one of
        its batch connections is up: until then intake answers `unavailable`)."""
        d = self.start_daemon("plaint-intake", **extra)
        d.wait_log("event stream starts", 15)
        deadline = time.monotonic() + timeout(5)
        while BATCH_READY not in d.log_text() and time.monotonic() < deadline and d.alive():
            time.sleep(0.01)
        return d

    def start_stage_daemon(self, binary, stage, **extra):
        """Starts a pipeline stage daemon (plaint-classifier, plaint-routing) and waits until
        its stage's own database connection is up (it logs "database ready" with app=stage;
        until then it takes no work)."""
        d = self.start_daemon(binary, **extra)
        d.wait_log(f'"msg":"database ready","app":"{stage}"', 15)
        return d

    def start_classifier(self, **extra):
        return self.start_stage_daemon("plaint-classifier", "classifier", **extra)

    def start_routing(self, **extra):
        return self.start_stage_daemon("plaint-routing", "routing", **extra)

    def config_copy(self, name="config"):
        """A copy of deploy/config under this test's tmp_path, to edit and point
        PLAINT_CONFIG_DIR at; returns its path."""
        with self._counter_lock:
            self._counter += 1
            n = self._counter
        path = self.tmp_path / f"{n:02d}-{name}"
        shutil.copytree(CONFIG_DIR, path)
        return path

    def ctl(self, *args, db_url=None, input=None, timeout=30, **extra):
        """Runs plaintctl ARGS to completion with env(**extra); returns the CompletedProcess
        (text). A sanitizer report in its output fails the test at teardown."""
        env = self.env(**extra)
        if db_url is not None:
            env["PLAINT_DATABASE_URL"] = db_url
        res = subprocess.run([binary_path("plaintctl"), *args], env=env, input=input,
                             capture_output=True, text=True, timeout=_scale(timeout),
                             cwd=str(ROOT), errors="replace")
        found = _scan_sanitizer(res.stdout + res.stderr)
        if found:
            self.problems.append(f"plaintctl {' '.join(args)} printed a sanitizer report:\n"
                                 + _around(res.stderr, found[0]))
        return res

    def remember_private(self, *strings):
        """Customer contact data and complaint text that no daemon log may contain."""
        for s in strings:
            if isinstance(s, str) and len(s) >= 3:
                self.contact_data.add(s)

    # ----- ZeroMQ

    def _endpoint(self, port):
        return f"tcp://127.0.0.1:{port or self.ports['submit']}"

    def _exchange(self, frames, kind, timeout, port=None):
        sock = self._ctx.socket(zmq.REQ if kind == "REQ" else zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self._endpoint(port))
            if kind == "DEALER":
                frames = [b"", *frames]
            sock.send_multipart(frames, copy=False)
            if not sock.poll(int(_scale(timeout) * 1000)):
                return None
            reply = sock.recv_multipart()
            if kind == "DEALER" and reply and reply[0] == b"":
                reply = reply[1:]
            return reply
        finally:
            sock.close(linger=0)

    @staticmethod
    def envelope(data, external_id=None, source="e2e", msg_id=None):
        data = dict(data)
        if external_id is not None:
            data["external_id"] = external_id
        return {"type": "complaint.submit", "v": 1, "id": msg_id or str(uuid.uuid4()),
                "at": now_rfc3339(), "source": source, "data": data}

    def submit(self, data, external_id=None, source="e2e", timeout=5, socket_type="REQ",
               *, msg_id=None, port=None):
        """Sends one complaint.submit (envelope with a uuid id, RFC 3339 at, v 1) and returns the
        parsed reply; raises NoReply when none came within timeout (scaled) seconds."""
        assert socket_type in SOCKET_KINDS, socket_type
        msg = self.envelope(data, external_id, source, msg_id)
        frame = json.dumps(msg, ensure_ascii=False).encode("utf-8")
        reply = self._exchange([frame], socket_type, timeout, port)
        if reply is None:
            raise NoReply(f"no reply to {msg['id']} within {_scale(timeout):.1f} s")
        assert len(reply) == 1, f"reply has {len(reply)} frames: {reply!r}"
        return json.loads(reply[0])

    def send_raw(self, frames, dealer=False, timeout=5, port=None):
        """Sends frames as they are (a REQ socket adds the empty delimiter itself, a DEALER does
        not); returns the reply frames (a REQ socket strips the delimiter) or None."""
        return self._exchange(list(frames), "DEALER_NODELIM" if dealer else "REQ", timeout, port)

    def subscribe(self, prefix="", port=None):
        """A SUB socket connected to the events port and subscribed to prefix, once its
        connection is up (the subscription then reaches the hub within milliseconds)."""
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode("utf-8"))
        monitor = sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            sub.connect(f"tcp://127.0.0.1:{port or self.ports['events']}")
            if not monitor.poll(int(timeout(10) * 1000)):
                pytest.fail("the SUB socket did not connect to the event stream within "
                            f"{timeout(10):.0f} s", pytrace=False)
            monitor.recv_multipart()
        finally:
            sub.disable_monitor()
            monitor.close(linger=0)
        # The handshake is done and the subscription is on the wire; the PUB side applies it
        # when its I/O thread has read it. There is no acknowledgement to wait for.
        time.sleep(0.05 * multiplier())
        self._subs.append(sub)
        return sub

    @staticmethod
    def receive_events(sub, count, timeout=10):
        """count events ([topic, JSON] messages) from sub, parsed, as (topic, event) pairs."""
        out = []
        deadline = time.monotonic() + _scale(timeout)
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not sub.poll(int(left * 1000)):
                pytest.fail(f"received {len(out)} of {count} events within "
                            f"{_scale(timeout):.1f} s", pytrace=False)
            frames = sub.recv_multipart()
            assert len(frames) == 2, f"an event has {len(frames)} frames, want 2: {frames!r}"
            out.append((frames[0].decode("utf-8"), json.loads(frames[1])))
        return out

    # ----- SQL

    def sql(self, query, *params):
        """Runs one statement (autocommit) on the test's database; returns its rows as tuples
        ([] for a statement without rows)."""
        with self._sql_lock:
            for attempt in (1, 2):
                try:
                    if self._sql_conn is None or self._sql_conn.closed:
                        self._sql_conn = psycopg2.connect(self.db_url, connect_timeout=10)
                        self._sql_conn.autocommit = True
                    with self._sql_conn.cursor() as cur:
                        cur.execute(query, params or None)
                        return cur.fetchall() if cur.description else []
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    # The server restarted under us (tests that stop it): reconnect once.
                    try:
                        self._sql_conn.close()
                    except Exception:
                        pass
                    self._sql_conn = None
                    if attempt == 2:
                        raise

    @staticmethod
    def wait_until(predicate, timeout, message):
        return wait_until(predicate, timeout, message)

    def start_desk(self, **extra):
        """Starts plaint-desk on a fresh PLAINT_HTTP_ADDR (d.http_addr, "127.0.0.1:PORT"; its
        /metrics and /healthz are there too) and waits until it logs "serving the API" and
        GET /healthz answers 200 (a database connection is ready: until then the API answers
        503)."""
        addr = extra.pop("PLAINT_HTTP_ADDR", None) or f"127.0.0.1:{free_port()}"
        extra.setdefault("PLAINT_METRICS_ADDR", "")
        d = self.daemon("plaint-desk", PLAINT_HTTP_ADDR=addr, **extra)
        d.http_addr = addr
        d.start()
        d.wait_log("serving the API", 15)

        def healthy():
            if not d.alive():
                pytest.fail(f"plaint-desk exited with status {d.proc.poll()}; log:\n{d.tail()}",
                            pytrace=False)
            try:
                return http(addr, "GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_until(healthy, 15, f"plaint-desk on {addr} did not answer GET /healthz with 200")
        return d

    def start_watchdog(self, wait=True, **extra):
        """Starts plaint-sla-watchdog (its metrics on d.metrics_addr) and, unless wait=False,
        waits until it logs "clocks loaded": every open case's clocks are in memory and it
        follows the event log from then on."""
        d = self.start_daemon("plaint-sla-watchdog", **extra)
        if wait:
            d.wait_log('"msg":"clocks loaded"', 15)
        return d

    def start_notification(self, config_dir=None, wait=True, **extra):
        """Starts plaint-notification (PLAINT_CONFIG_DIR=config_dir when given, e.g. a
        config_copy() with a test's notification.json; metrics on d.metrics_addr) and, unless
        wait=False, waits until its database connection is ready: from then on it reads the
        event log into the outbox and sends what is due every PLAINT_NOTIFY_TICK."""
        if config_dir is not None:
            extra["PLAINT_CONFIG_DIR"] = str(config_dir)
        d = self.start_daemon("plaint-notification", **extra)
        if wait:
            d.wait_log('"msg":"database ready","app":"plaint-notification"', 15)
        return d


def _around(text, marker, before=200, after=3000):
    i = text.find(marker)
    return text[max(0, i - before): i + after]


# ---------------------------------------------------------------------------- HTTP


class HttpResponse:
    """An HTTP answer: status, headers (names in lower case), body (bytes), json (the body
    parsed, or None when it is not JSON)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<HttpResponse {self.status} {self.body[:300]!r}>"


def http(addr, method, path, body=None, headers=None, timeout=10):
    """One HTTP request to addr ("HOST:PORT") with urllib, never through a proxy; returns an
    HttpResponse for every status (4xx and 5xx included). body: bytes or str as they are, any
    other value as JSON. timeout (scaled) in seconds; raises OSError when nothing answers."""
    import urllib.error
    import urllib.request

    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body, ensure_ascii=False)
    if isinstance(body, str):
        body = body.encode("utf-8")
    req = urllib.request.Request(f"http://{addr}{path}", data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=_scale(timeout)) as res:
            return HttpResponse(res.status, {k.lower(): v for k, v in res.getheaders()},
                                res.read())
    except urllib.error.HTTPError as e:
        with e:
            return HttpResponse(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())
