"""End-to-end tests of the case-event stream: the PUB socket of intake's hub, the sequencer in
PostgreSQL, and replay (plaintctl events). Contract: "The case-event stream"; proto/PROTOCOL.md
sections 5 and 6.

- a subscriber sees every event once, in seq order, seq dense, in the published envelope;
- a replay after N never skips an event that a later replay would show, with writers committing
  late or rolling back and several sequencers competing;
- plaintctl events --after N --follow goes from replay to live without a gap or a repeat.
"""

import concurrent.futures
import json
import random
import threading
import time

import psycopg2
import pytest

import harness
from harness import timeout

INSERT_EVENT = ("INSERT INTO events (type, case_id, source, data)"
                " VALUES ('case.noted', NULL, 'e2e', '{}') RETURNING event_id::text")


def complaint(plaint, tag):
    phone = "+86137" + "".join(random.choice("0123456789") for _ in range(8))
    body = f"Event test complaint {tag}: the screen cracked by itself"
    name = f"Evelyn Testperson {tag}"
    plaint.remember_private(phone, body, name)
    return {"channel": "app", "customer": {"phone": phone, "name": name}, "body": body}


def submit_many(plaint, n, threads=8, prefix="EV"):
    """n complaints from `threads` threads; returns the accepted data in no particular order."""
    def one(i):
        reply = plaint.submit(complaint(plaint, f"{prefix}{i}"), external_id=f"{prefix}-{i}",
                              timeout=10)
        assert reply["type"] == "complaint.accepted", reply
        return reply["data"]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def sequenced(plaint):
    return plaint.sql("SELECT count(*) FILTER (WHERE seq IS NOT NULL),"
                      " count(*) FILTER (WHERE seq IS NULL) FROM events")[0]


# ---------------------------------------------------------------------------- live stream


def test_subscriber_gets_every_event_once_in_seq_order(plaint):
    plaint.start_intake()
    sub = plaint.subscribe()
    accepted = submit_many(plaint, 200)
    received = plaint.receive_events(sub, 200, timeout=20)
    seqs = [e["data"]["seq"] for _, e in received]
    assert seqs == list(range(1, 201)), "seq must start at 1 and grow by exactly 1"
    for topic, event in received:
        assert topic == event["type"] == "case.received"
        harness.validate_event(event)
        assert {"case_id", "case_no", "seq"} <= set(event["data"])
        assert event["source"] == "plaint-intake"
    assert len({e["id"] for _, e in received}) == 200
    assert sorted(e["data"]["case_id"] for _, e in received) == \
        sorted(a["case_id"] for a in accepted)
    by_case = {a["case_id"]: a["case_no"] for a in accepted}
    assert all(by_case[e["data"]["case_id"]] == e["data"]["case_no"] for _, e in received)
    # Nothing more: each event once.
    assert not sub.poll(int(timeout(0.3) * 1000))
    # The live envelope is the replayed one, byte for byte in content.
    replay = {r[0]: json.loads(r[1]) for r in plaint.sql(
        "SELECT seq, plaint_event_envelope(e) FROM events e ORDER BY seq")}
    assert all(replay[e["data"]["seq"]] == e for _, e in received)


def test_subscriber_prefix_filters(plaint):
    plaint.start_intake()
    sla = plaint.subscribe("sla.")
    case = plaint.subscribe("case.rec")
    submit_many(plaint, 5, threads=2)
    got = plaint.receive_events(case, 5)
    assert [e["data"]["seq"] for _, e in got] == [1, 2, 3, 4, 5]
    assert not sla.poll(int(timeout(0.3) * 1000))


# ---------------------------------------------------------------------------- replay


class Writers:
    """Threads that insert events straight into the table, each in its own transaction held open
    0-50 ms (so commits come out of insertion order), some rolled back; and threads that run the
    sequencer concurrently with intake's hub."""

    def __init__(self, plaint, writers=6, sequencers=3, duration=2.0, submitters=0):
        self.plaint = plaint
        self.duration = duration
        self.committed = set()
        self.cases = []  # case_ids accepted by intake, which numbers its events at commit
        self.rolled_back = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.failures = []
        self.writers = [threading.Thread(target=self._guard, args=(self._write,), daemon=True)
                        for _ in range(writers)]
        self.writers += [threading.Thread(target=self._guard, args=(self._submit, n), daemon=True)
                         for n in range(submitters)]
        self.sequencers = [threading.Thread(target=self._guard, args=(self._sequence,),
                                            daemon=True) for _ in range(sequencers)]

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.failures.append(e)

    def _submit(self, n):
        deadline = time.monotonic() + self.duration
        i = 0
        while time.monotonic() < deadline:
            reply = self.plaint.submit(complaint(self.plaint, f"W{n}-{i}"),
                                       external_id=f"W{n}-{i}", timeout=10)
            assert reply["type"] == "complaint.accepted", reply
            with self.lock:
                self.cases.append(reply["data"]["case_id"])
            i += 1

    def expected_ids(self):
        """Every committed event: the direct writers' and intake's case.received events."""
        rows = self.plaint.sql("SELECT event_id::text FROM events WHERE case_id = ANY(%s::uuid[])",
                               self.cases)
        return self.committed | {r[0] for r in rows}

    def _write(self):
        conn = psycopg2.connect(self.plaint.db_url)
        try:
            deadline = time.monotonic() + self.duration
            while time.monotonic() < deadline:
                ids = []
                with conn.cursor() as cur:
                    for _ in range(random.randint(1, 3)):
                        cur.execute(INSERT_EVENT)
                        ids.append(cur.fetchone()[0])
                    time.sleep(random.uniform(0, 0.05))
                    if random.random() < 0.2:
                        conn.rollback()
                        with self.lock:
                            self.rolled_back += len(ids)
                        continue
                    cur.execute("NOTIFY plaint_events")
                conn.commit()
                with self.lock:
                    self.committed.update(ids)
        finally:
            conn.close()

    def _sequence(self):
        conn = psycopg2.connect(self.plaint.db_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self.done.is_set():
                    cur.execute("SELECT * FROM plaint_sequence_events(50)")
                    cur.fetchall()
                    time.sleep(random.uniform(0, 0.005))
        finally:
            conn.close()

    def start(self):
        for t in self.writers + self.sequencers:
            t.start()
        return self

    def writing(self):
        return any(t.is_alive() for t in self.writers) and not self.failures

    def finish(self):
        """Waits for the writers, stops the sequencer threads, then waits until intake's hub has
        numbered everything committed."""
        for t in self.writers:
            t.join(timeout(30))
        self.done.set()
        for t in self.sequencers:
            t.join(timeout(30))
        assert not self.failures, self.failures
        self.plaint.wait_until(lambda: sequenced(self.plaint)[1] == 0, 10,
                               "every committed event numbered by the hub")


def test_replay_never_skips_with_concurrent_writers_and_sequencers(plaint):
    plaint.start_intake()
    sub = plaint.subscribe()
    writers = Writers(plaint, submitters=2).start()
    seen = []
    answers = 0
    conn = psycopg2.connect(plaint.db_url)
    conn.autocommit = True

    def read():
        nonlocal answers
        last = seen[-1][0] if seen else 0
        with conn.cursor() as cur:
            cur.execute("SELECT seq, event_id::text FROM events WHERE seq > %s ORDER BY seq",
                        (last,))
            rows = cur.fetchall()
        answers += 1
        if rows:
            got = [r[0] for r in rows]
            assert got == list(range(last + 1, last + 1 + len(rows))), \
                f"replay after {last} returned {got[:10]}...: a hole or a skip"
        seen.extend(rows)

    try:
        while writers.writing():
            read()
        writers.finish()
        read()
    finally:
        conn.close()
    print(f"{len(writers.committed)} events committed, {writers.rolled_back} rolled back, "
          f"{len(writers.cases)} complaints, {answers} replays")
    ids = [r[1] for r in seen]
    assert len(ids) == len(set(ids)), "an event was replayed twice"
    assert writers.cases, "the submitters should have stored complaints meanwhile"
    assert set(ids) == writers.expected_ids(), "replay missed committed events or showed others"
    assert answers > 50, "the reader should have replayed many times during the writes"

    # The hub published them all, in order, each once.
    got = plaint.receive_events(sub, len(seen), timeout=10)
    assert [e["data"]["seq"] for _, e in got] == list(range(1, len(seen) + 1))
    assert [e["id"] for _, e in got] == ids


def test_ctl_replay_never_skips_with_concurrent_writers(plaint):
    plaint.start_intake()
    writers = Writers(plaint, duration=2.5, submitters=2).start()
    last = 0
    ids = []
    runs = 0

    def replay():
        nonlocal last, runs
        res = plaint.ctl("events", "--after", str(last))
        assert res.returncode == 0, res.stderr
        events = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
        seqs = [e["data"]["seq"] for e in events]
        assert seqs == list(range(last + 1, last + 1 + len(seqs))), \
            f"plaintctl events --after {last} printed {seqs[:10]}...: a hole or a skip"
        ids.extend(e["id"] for e in events)
        if seqs:
            last = seqs[-1]
        runs += 1

    while writers.writing():
        replay()
    writers.finish()
    replay()
    print(f"{len(writers.committed)} events committed, {runs} plaintctl replays")
    assert runs >= 5
    assert len(ids) == len(set(ids)) and set(ids) == writers.expected_ids()


# ---------------------------------------------------------------------------- replay, then live


def printed_events(daemon):
    out = []
    for line in daemon.log_text().splitlines():
        if line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg.get("data"), dict) and "seq" in msg["data"]:
                out.append(msg)
    return out


def test_ctl_events_follow_replays_then_goes_live(plaint):
    plaint.start_intake()
    submit_many(plaint, 10, threads=2, prefix="F1")
    plaint.wait_until(lambda: sequenced(plaint) == (10, 0), 10, "first events numbered")
    follow = plaint.start_daemon("plaintctl", "events", "--after", "4", "--follow")
    plaint.wait_until(lambda: len(printed_events(follow)) >= 6, 10, "the replay printed 5..10")

    # Live: complaints, and events committed late by direct writers, while it follows.
    writers = Writers(plaint, writers=3, sequencers=1, duration=1.0).start()
    submit_many(plaint, 30, threads=4, prefix="F2")
    writers.finish()
    total = sequenced(plaint)[0]
    plaint.wait_until(lambda: len(printed_events(follow)) >= total - 4, 10,
                      f"follow printed events up to {total}")
    assert follow.stop() == 0
    events = printed_events(follow)
    assert [e["data"]["seq"] for e in events] == list(range(5, total + 1)), \
        "--follow must print every event once, in order, without a gap"
    for e in events:
        if e["type"] == "case.received":
            harness.validate_event(e)


def number_an_event_while_no_hub_runs(plaint):
    """An event numbered while intake is down: the next hub starts after it and never publishes
    it live (PROTOCOL.md section 9); only replay shows it."""
    plaint.sql("INSERT INTO events (type, case_id, source, data)"
               " VALUES ('case.noted', NULL, 'e2e', '{}')")
    return plaint.sql("SELECT seq FROM plaint_sequence_events(50)")[0][0]


def test_ctl_events_follow_fills_a_gap_from_replay(plaint):
    """Live events after an unpublished one: --follow notices the jump in seq, replays the
    missing event, and prints nothing twice."""
    intake = plaint.start_intake()
    submit_many(plaint, 3, threads=1, prefix="G1")
    plaint.wait_until(lambda: sequenced(plaint) == (3, 0), 10, "first events numbered")
    follow = plaint.start_daemon("plaintctl", "events", "--after", "0", "--follow")
    plaint.wait_until(lambda: len(printed_events(follow)) >= 3, 10, "the replay printed 1..3")
    assert intake.stop() == 0
    hidden = number_an_event_while_no_hub_runs(plaint)
    assert hidden == 4
    plaint.start_intake()
    # Live events until follow has shown the hidden one (its SUB reconnects by itself).
    n = 0
    deadline = time.monotonic() + timeout(15)
    while not any(e["data"]["seq"] == hidden for e in printed_events(follow)):
        assert time.monotonic() < deadline, "--follow never printed the event it missed"
        submit_many(plaint, 1, threads=1, prefix=f"G2-{n}")
        n += 1
        time.sleep(0.2)
    total = sequenced(plaint)[0]
    plaint.wait_until(lambda: len(printed_events(follow)) >= total, 10, "follow caught up")
    assert follow.stop() == 0
    assert [e["data"]["seq"] for e in printed_events(follow)] == list(range(1, total + 1))


def test_ctl_events_follow_shows_an_unpublished_event_without_waiting_for_another(plaint):
    intake = plaint.start_intake()
    follow = plaint.start_daemon("plaintctl", "events", "--after", "0", "--follow")
    submit_many(plaint, 2, threads=1, prefix="Q1")
    plaint.wait_until(lambda: len(printed_events(follow)) >= 2, 10, "follow printed 1..2")
    assert intake.stop() == 0
    hidden = number_an_event_while_no_hub_runs(plaint)
    plaint.start_intake()
    plaint.wait_until(lambda: any(e["data"]["seq"] == hidden for e in printed_events(follow)),
                      3, f"--follow printed event {hidden}, numbered while intake was down")


def test_every_hub_publishes_the_whole_stream_in_order(plaint):
    """Two intakes on one database: each hub publishes every event, in seq order, once."""
    plaint.start_intake()
    other = plaint.new_ports()
    plaint.start_intake(**plaint.endpoints(other))
    subs = [plaint.subscribe(), plaint.subscribe(port=other["events"])]

    def one(i):
        port = (plaint.ports, other)[i % 2]["submit"]
        reply = plaint.submit(complaint(plaint, f"H{i}"), external_id=f"H-{i}", port=port)
        assert reply["type"] == "complaint.accepted", reply

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(60)))
    for sub in subs:
        got = plaint.receive_events(sub, 60, timeout=10)
        assert [e["data"]["seq"] for _, e in got] == list(range(1, 61))
        assert not sub.poll(int(timeout(0.3) * 1000)), "an event published twice"
