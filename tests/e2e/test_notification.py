"""End-to-end tests of plaint-notification: real PostgreSQL, intake, classifier, routing, desk and
notification processes; a real SMTP server (aiosmtpd, Debian's python3-aiosmtpd) and real HTTP
receivers (http.server in threads) on 127.0.0.1 stand in for the mail relay, the SMS gateway and
the staff's webhooks. Format and guarantees: services/notification/README.md.

What is checked:
- the acknowledgement e-mail: right case_no, Chinese for a Chinese customer (lang "zh", "zh-*",
  or a Chinese complaint without lang), English otherwise (lang wins over the text), the
  subject (RFC 2047) and the base64 body decoded; envelope and header From/To; Message-ID and
  X-Plaint-Delivery; one mail per case; the shipped Chinese From display name is encoded so the
  header stays ASCII; the time promise ({{first_response_due}}) is in the mail even when routing
  is slower than the notifier;
- SMS: the gateway gets the JSON body {"to", "text"} (the "sms" template); only channels the
  customer has a contact for are used;
- the desk's propose / feedback satisfied (resolve) / review + close give the solution, result
  and survey mails (and the survey SMS), in the customer's language, and nothing else;
- webhooks: X-Plaint-Signature verifies with the secret over the exact body; X-Plaint-Delivery is
  the body's delivery_id; X-Plaint-Event; the staff alert body names the person ("to"); an
  unnamed webhook is called "webhooks[0]"; a webhook for "notification." is not fed the events
  of its own deliveries forever; 500 then 200 is two requests with one delivery id, attempt 1
  then 2, and one notification.sent; a receiver that always answers 500, or never answers, gets
  the configured attempts, then notification.failed (final, attempts) and the row is dead (the
  operator's dead-letter query); the metrics count it all;
- notification.sent / failed validate against their schemas and never carry an address;
- a receiver that takes 3 s, or a mail server that takes 3 s to confirm a message, does not hold
  up other deliveries: the daemon's loop never blocks;
- kill -9 mid-stream: after the restart every case has exactly one delivery id, a delivery is
  repeated at most once, with the same X-Plaint-Delivery and Message-ID; a clean restart repeats
  nothing; SIGTERM with a webhook in flight finishes it or hands the row back; SIGTERM stops
  within 10 s while the mail server hangs;
- erasure (desk POST /v1/erasure) clears the outbox's addresses and payloads of the customer's
  cases (and a pending row is then never sent), other customers' rows stay;
- bad notification.json (wrong types, bad URL schemes, unknown template kinds, ...) exits 78
  naming the field, every problem reported; bad PLAINT_NOTIFY_* settings exit 78; --help lists
  PLAINT_NOTIFY_*;
- no contact data or complaint text in any daemon log (remember_private, checked at teardown).
Retry backoffs are "200ms" so that the file runs in about a minute (ASan: under two).
Every complaint text here was written for this file.
"""

import asyncio
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import re
import secrets
import threading
import time
import uuid

import pytest
from aiosmtpd.controller import Controller

import harness
from harness import http as http_call, timeout, validate_event

CASE_NO = re.compile(r"^C-\d{8}-\d{6,}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SECRET_ENV = "PLAINT_WEBHOOK_SECRET"
ASCII_FROM = "Plaint Care <care@e2e.example>"
FAST = {"PLAINT_NOTIFY_TICK": "100ms"}
READY = '"msg":"database ready","app":"plaint-notification"'


# ---------------------------------------------------------------------------- receivers


class Mail:
    """One message the SMTP server accepted: the envelope and the parsed message."""

    def __init__(self, mail_from, rcpt_tos, raw):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.raw = raw
        self.at = time.monotonic()
        self.answered_at = None
        self.msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.subject = str(self.msg["Subject"])
        self.text = self.msg.get_content()
        self.delivery = self.msg["X-Plaint-Delivery"]
        self.message_id = self.msg["Message-ID"]

    @property
    def raw_headers(self):
        return self.raw.split(b"\r\n\r\n", 1)[0]

    def __repr__(self):
        return f"<Mail to={self.rcpt_tos} subject={self.subject!r} delivery={self.delivery}>"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1: keeps every message it accepts. delay: seconds
    it takes to answer the end of DATA (the message is kept before that: received, not yet
    confirmed). refuse: recipients it answers 450 (try again later)."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.refuse = set()
        self.mails = []
        self.refused = []
        self.lock = threading.Lock()
        self.port = harness.free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.url = f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            with self.lock:
                self.refused.append(address)
            return "450 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        mail = Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        with self.lock:
            self.mails.append(mail)
        if self.delay:
            await asyncio.sleep(self.delay)
        mail.answered_at = time.monotonic()
        return "250 OK"

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def all(self):
        with self.lock:
            return list(self.mails)

    def to(self, address):
        return [m for m in self.all() if m.rcpt_tos == [address]]

    def wait(self, predicate, timeout_s, message):
        """Waits until predicate(mails) is truthy; returns the mails."""
        harness.wait_until(lambda: predicate(self.all()), timeout_s, message)
        return self.all()

    def wait_for(self, address, n=1, timeout_s=15):
        self.wait(lambda ms: len([m for m in ms if m.rcpt_tos == [address]]) >= n, timeout_s,
                  f"{n} mail(s) to a test customer; got {self.all()}")
        return self.to(address)


class Request:
    def __init__(self, path, headers, body):
        self.path = path
        self.headers = headers
        self.body = body
        self.at = time.monotonic()
        self.answered_at = None
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<Request {self.path} {self.headers.get('x-plaint-event')} " \
               f"attempt={self.headers.get('x-plaint-attempt')}>"


class HttpSink:
    """An HTTP receiver on 127.0.0.1 in a thread: keeps every POST. answer(request, n) gives the
    status, or (status, seconds to wait before answering); n counts the requests with the same
    X-Plaint-Delivery so far (1 for the first). A wait ends early when the sink stops."""

    def __init__(self, answer=None):
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.answer = answer or (lambda req, n: 200)
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length))
                with sink.lock:
                    sink.requests.append(req)
                    delivery = req.headers.get("x-plaint-delivery")
                    n = sum(1 for r in sink.requests
                            if r.headers.get("x-plaint-delivery") == delivery)
                got = sink.answer(req, n)
                status, wait_s = got if isinstance(got, tuple) else (got, 0)
                if wait_s:
                    sink.release.wait(wait_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the sender gave up waiting (its timeout)
                req.answered_at = time.monotonic()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a sender that hung up mid-answer

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def all(self):
        with self.lock:
            return list(self.requests)

    def wait(self, predicate, timeout_s, message):
        harness.wait_until(lambda: predicate(self.all()), timeout_s, message)
        return self.all()

    def for_case(self, case_id):
        return [r for r in self.all()
                if r.json and r.json["event"]["data"].get("case_id") == case_id]


@pytest.fixture
def sinks():
    """Makes SmtpSink(...) / HttpSink(...) started, and stops them after the test."""
    made = []

    class Make:
        @staticmethod
        def smtp(**kw):
            s = SmtpSink(**kw).start()
            made.append(s)
            return s

        @staticmethod
        def http(answer=None):
            s = HttpSink(answer).start()
            made.append(s)
            return s

    yield Make
    for s in reversed(made):
        s.stop()


# ---------------------------------------------------------------------------- configuration


def hook(name, sink, events, timeout_s="2s", secret_env=SECRET_ENV):
    return {"name": name, "url": sink.url, "secret_env": secret_env, "timeout": timeout_s,
            "events": events}


def notify_config(plaint, smtp=None, sms=None, hooks=(), attempts=3, backoff="200ms",
                  max_backoff="1s", sender=ASCII_FROM, edit=None):
    """A config_copy() whose notification.json sends through the given sinks (a channel without
    a sink is off), with small backoffs; edit(doc) may change the document further."""
    path = plaint.config_copy("notify")
    f = path / "notification.json"
    doc = json.loads(f.read_text(encoding="utf-8"))
    doc["retry"] = {"attempts": attempts, "backoff": backoff, "max_backoff": max_backoff}
    doc["email"].update(url=smtp.url if smtp else "", starttls=False, timeout="5s")
    if sender is not None:
        doc["email"]["from"] = sender
    doc["sms"].update(url=sms.url if sms else "", timeout="5s")
    doc["webhooks"] = list(hooks)
    if edit:
        edit(doc)
    f.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def shipped_templates():
    doc = json.loads((harness.CONFIG_DIR / "notification.json").read_text(encoding="utf-8"))
    return doc["templates"]


def render(kind, lang, part, **values):
    text = shipped_templates()[kind][lang][part]
    return re.sub(r"\{\{([a-z_]+)\}\}", lambda m: str(values.get(m.group(1), "")), text)


# ---------------------------------------------------------------------------- complaints


def complaint(plaint, who="zh", **extra):
    """A complaint.submit data object with unique contact data, registered as private.
    who: "zh" (lang zh), "zh-nolang" (Chinese text, no lang), "en" (lang en), "en-nolang"."""
    tag = secrets.token_hex(4)
    digits = "".join(str(secrets.randbelow(10)) for _ in range(8))
    if who.startswith("zh"):
        data = {
            "channel": "app",
            "customer": {"id": f"CU-{tag}", "name": f"周晓岚{tag}", "phone": f"+86139{digits}",
                         "email": f"zhou.xl.{tag}@example.cn", "type": "individual", "lang": "zh"},
            "subject": f"空气炸锅用了两次就冒烟 {tag}",
            "body": f"上周买的空气炸锅只用了两次，今天一开机就冒出焦糊味的烟，吓得我马上拔了插头。{tag}",
            "demand": f"退货退款 {tag}",
            "demand_type": "refund",
        }
    else:
        data = {
            "channel": "email",
            "customer": {"id": f"CU-{tag}", "name": f"Tamsin Oakes {tag}",
                         "phone": f"+44 7700 9{digits[:5]}", "email": f"t.oakes.{tag}@example.org",
                         "type": "individual", "lang": "en"},
            "subject": f"Wrong size delivered twice {tag}",
            "body": (f"I ordered the jacket in medium and for the second time a small one came. "
                     f"The return label you sent does not scan at the post office. {tag}"),
            "demand": f"Send the medium and collect the small one {tag}",
            "demand_type": "replacement",
        }
    if who.endswith("nolang"):
        data["customer"].pop("lang")
    customer = extra.pop("customer", None)
    if customer is not None:
        data["customer"] = {k: v for k, v in {**data["customer"], **customer}.items()
                            if v is not None}
    data.update(extra)
    c = data["customer"]
    plaint.remember_private(c.get("name"), c.get("phone"), c.get("email"), data["body"],
                            data["subject"], data["demand"])
    return data


def submit(plaint, data):
    reply = plaint.submit(data, external_id=f"NT-{uuid.uuid4()}")
    assert reply["type"] == "complaint.accepted", reply
    return reply["data"]["case_id"], reply["data"]["case_no"]


def start_stack(plaint, cfg, pipeline=True, desk=True, **env):
    plaint.start_intake()
    if pipeline:
        plaint.start_classifier()
        plaint.start_routing()
    d = plaint.start_desk() if desk else None
    n = plaint.start_notification(cfg, **{**FAST, SECRET_ENV: "e2e-hook-secret", **env})
    return d, n


def events(plaint, prefix="notification."):
    """Every numbered event of the log whose type starts with prefix, as the event stream and
    GET /v1/events show it (plaint_event_envelope: data carries seq)."""
    rows = plaint.sql("SELECT plaint_event_envelope(e)::text FROM events e"
                      " WHERE e.seq IS NOT NULL AND e.type LIKE %s ORDER BY e.seq",
                      prefix.replace("%", r"\%") + "%")
    return [json.loads(r[0]) for r in rows]


def desk_events(desk, prefix="notification."):
    out, after = [], 0
    while True:
        page = http_call(desk.http_addr, "GET", f"/v1/events?after={after}&limit=500").json
        out += page["events"]
        if not page["events"]:
            break
        after = page["next"]
    return [e for e in out if e["type"].startswith(prefix)]


def case_row(plaint, case_id):
    return plaint.sql("SELECT assignee, to_char(first_response_due AT TIME ZONE 'UTC',"
                      " 'YYYY-MM-DD HH24:MI'), state FROM cases WHERE case_id = %s", case_id)[0]


def wait_routed(plaint, case_id, timeout_s=20):
    return harness.wait_until(
        lambda: (lambda r: r if r[1] and r[2] == "routed" else None)(case_row(plaint, case_id)),
        timeout_s, f"case {case_id} was not routed")


def outbox(plaint, where="true", *params):
    cols = ("outbox_id", "delivery_id", "event_type", "case_id", "kind", "channel", "recipient",
            "address", "payload", "state", "attempts", "last_error")
    select = ", ".join(c + ("::text" if c.endswith("_id") else "") for c in cols)
    rows = plaint.sql(f"SELECT {select} FROM outbox WHERE {where} ORDER BY outbox_id", *params)
    return [dict(zip(cols, r)) for r in rows]


def all_sent(plaint):
    """True when the outbox holds rows and every one is sent or dead."""
    n, done = plaint.sql("SELECT count(*), count(*) FILTER (WHERE state IN ('sent', 'dead'))"
                         " FROM outbox")[0]
    return n > 0 and n == done


def within(predicate, timeout_s):
    """predicate's first truthy value within timeout_s (scaled) seconds, or None."""
    deadline = time.monotonic() + timeout(timeout_s)
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(0.05)


def check_notification_events(evs, private, people=("customer",)):
    """Each notification.* event validates and names its recipient as a role or user id."""
    for e in evs:
        validate_event(e)
        d = e["data"]
        assert d["to"] in people, f"{e['type']} names {d['to']!r}, want one of {people}"
        assert UUID.match(d["delivery_id"]), d
        text = json.dumps(d, ensure_ascii=False)
        assert "@" not in text, f"an address in {text}"
        leaked = [s for s in private if s in text]
        assert not leaked, f"{e['type']} holds contact data or complaint text: {leaked}"


def metric(d, name, **labels):
    text = http_call(d.metrics_addr, "GET", "/metrics").body.decode("utf-8")
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{(.*)\})? ([0-9.e+-]+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


# ---------------------------------------------------------------------------- 1. acknowledgement


def test_acknowledgement_mail_in_the_customers_language(plaint, sinks):
    smtp = sinks.smtp()
    desk, notifier = start_stack(plaint, notify_config(plaint, smtp=smtp))
    people = [
        ("zh", complaint(plaint, "zh")),
        ("zh", complaint(plaint, "zh-nolang")),  # Chinese text, no lang
        ("zh", complaint(plaint, "en", customer={"lang": "zh-Hant-TW"})),
        ("en", complaint(plaint, "en")),
        ("en", complaint(plaint, "en-nolang")),
        ("en", complaint(plaint, "zh", customer={"lang": "en-GB"})),  # lang wins over the text
        ("en", complaint(plaint, "en", customer={"lang": "fr"})),  # no French template: en
        ("zh", complaint(plaint, "zh", customer={"name": None})),  # no name: 客户
    ]
    cases = [(lang, data, *submit(plaint, data)) for lang, data in people]
    for lang, data, case_id, case_no in cases:
        address = data["customer"]["email"]
        mails = smtp.wait_for(address)
        assert len(mails) == 1, mails
        m = mails[0]
        assert m.mail_from == "care@e2e.example" and m.rcpt_tos == [address]
        assert m.msg["From"].addresses[0].addr_spec == "care@e2e.example"
        assert m.msg["From"].addresses[0].display_name == "Plaint Care"
        assert [a.addr_spec for a in m.msg["To"].addresses] == [address]
        want_subject = render("acknowledgement", lang, "subject", case_no=case_no)
        assert m.subject == want_subject, (lang, data["customer"].get("lang"), m.subject)
        assert re.search(rb"^Subject: =\?UTF-8\?B\?", m.raw_headers, re.M), m.raw_headers
        assert m.msg.get_content_type() == "text/plain"
        assert m.msg.get_content_charset() == "utf-8"
        assert m.msg["Content-Transfer-Encoding"] == "base64"
        name = data["customer"].get("name") or {"zh": "客户", "en": "customer"}[lang]
        greeting = {"zh": f"尊敬的{name}：", "en": f"Dear {name},"}[lang]
        assert m.text.startswith(greeting), (lang, m.text[:80])
        assert m.text.count(case_no) == 2, m.text
        assert {"zh": "客户服务中心", "en": "Customer Care"}[lang] in m.text
        assert UUID.match(m.delivery), m.delivery
        assert m.message_id == f"<{m.delivery}@plaint>"
        assert m.msg["Date"] is not None and m.msg["MIME-Version"] == "1.0"
        row = outbox(plaint, "case_id = %s AND channel = 'email'", case_id)
        assert len(row) == 1 and row[0]["delivery_id"] == m.delivery, row
        assert row[0]["kind"] == "acknowledgement" and row[0]["recipient"] == "customer"
        assert row[0]["payload"]["lang"] == lang

    # Later events of these cases (classified, routed) tell the customer nothing; the daemon's
    # own events are not read back into new mails.
    harness.wait_until(lambda: all_sent(plaint) and
                       len(events(plaint, "notification.sent")) == len(cases), 15,
                       "every acknowledgement recorded as sent")
    for _, _, case_id, _ in cases:
        wait_routed(plaint, case_id)
    time.sleep(timeout(0.5))
    assert len(smtp.all()) == len(cases), smtp.all()
    sent = desk_events(desk)
    assert [e["type"] for e in sent] == ["notification.sent"] * len(cases)
    private = list(plaint.contact_data)
    check_notification_events(sent, private)
    by_case = {e["data"]["case_id"]: e["data"] for e in sent}
    for _, _, case_id, case_no in cases:
        d = by_case[case_id]
        assert (d["case_no"], d["kind"], d["channel"], d["to"], d["attempt"], d["event"]) == (
            case_no, "acknowledgement", "email", "customer", 1, "case.received"), d
    assert metric(notifier, "plaint_notifications_total", outcome="sent") == len(cases)
    assert metric(notifier, "plaint_notifications_queued_total") == len(cases)


def test_shipped_from_with_a_chinese_display_name_is_encoded(plaint, sinks):
    """deploy/config/notification.json's From is "客户服务中心 Customer Care <care@example.com>": a
    header must be ASCII (RFC 5322; RFC 2047 encoded-words for other text) unless the server
    offered SMTPUTF8, which aiosmtpd (like most relays) does not by default."""
    smtp = sinks.smtp()
    start_stack(plaint, notify_config(plaint, smtp=smtp, sender=None), pipeline=False,
                desk=False)
    data = complaint(plaint, "zh")
    submit(plaint, data)
    m = smtp.wait_for(data["customer"]["email"])[0]
    assert m.mail_from == "care@example.com"
    assert m.msg["From"].addresses[0].addr_spec == "care@example.com"
    bad = [line for line in m.raw_headers.split(b"\r\n") if any(b > 127 for b in line)]
    assert not bad, f"8-bit header lines: {bad}"
    assert m.msg["From"].addresses[0].display_name == "客户服务中心 Customer Care"


def test_acknowledgement_promises_the_first_response_time(plaint, sinks):
    """The acknowledgement's template promises "by {{first_response_due}}", which routing sets.
    With routing slower than the notifier (here: started after the notifier has read the
    case.received event), the customer must still get the promise, not "by  (UTC)"."""
    smtp = sinks.smtp()
    # Routing starts late here (slower still under ASan): the wait must outlast it.
    start_stack(plaint, notify_config(plaint, smtp=smtp), pipeline=False, desk=False,
                PLAINT_NOTIFY_ACK_WAIT=f"{int(timeout(60))}s")
    data = complaint(plaint, "en")
    case_id, case_no = submit(plaint, data)
    seq = harness.wait_until(lambda: plaint.sql("SELECT seq FROM events WHERE case_id = %s",
                                                case_id)[0][0], 10, "case.received numbered")
    # Give the notifier time to read past the event (or to decide to wait for the routing).
    within(lambda: plaint.sql("SELECT coalesce(max(seq), 0) >= %s FROM event_cursors",
                              seq)[0][0], 3)
    plaint.start_classifier()
    plaint.start_routing()
    _, due, _ = wait_routed(plaint, case_id)
    m = smtp.wait_for(data["customer"]["email"])[0]
    assert case_no in m.text
    assert f"by {due} (UTC)" in m.text, (
        f"the acknowledgement does not promise the first-response time {due}: {m.text!r}")


# ---------------------------------------------------------------------------- 2. SMS


def test_sms_gateway_gets_json_with_to_and_text(plaint, sinks):
    smtp, gateway = sinks.smtp(), sinks.http()
    start_stack(plaint, notify_config(plaint, smtp=smtp, sms=gateway), desk=False)
    zh = complaint(plaint, "zh")
    en = complaint(plaint, "en")
    phone_only = complaint(plaint, "en", customer={"email": None})
    mail_only = complaint(plaint, "zh", customer={"phone": None})
    cases = {k: submit(plaint, d) for k, d in
             (("zh", zh), ("en", en), ("phone_only", phone_only), ("mail_only", mail_only))}
    gateway.wait(lambda rs: len(rs) >= 3, 15, "three SMS")
    harness.wait_until(lambda: all_sent(plaint), 15, "every notification sent")
    time.sleep(timeout(0.3))
    by_to = {}
    for r in gateway.all():
        assert r.headers["content-type"] == "application/json", r.headers
        assert set(r.json) == {"to", "text"}, r.json
        by_to.setdefault(r.json["to"], []).append(r.json["text"])
    for key, data, lang in (("zh", zh, "zh"), ("en", en, "en"), ("phone_only", phone_only, "en")):
        texts = by_to.pop(data["customer"]["phone"])
        assert len(texts) == 1, texts
        case_no = cases[key][1]
        want = render("acknowledgement", lang, "sms", case_no=case_no, first_response_due="")
        prefix = want.split(case_no)[0] + case_no
        assert texts[0].startswith(prefix), (texts[0], prefix)
    assert by_to == {}, f"SMS to a customer without a phone: {by_to}"
    assert len(smtp.to(zh["customer"]["email"])) == 1
    assert len(smtp.to(mail_only["customer"]["email"])) == 1
    assert len(smtp.all()) == 3, smtp.all()
    rows = outbox(plaint, "channel = 'sms'")
    assert len(rows) == 3 and all(r["recipient"] == "customer" for r in rows), rows
    check_notification_events(events(plaint), list(plaint.contact_data))
    assert sorted(e["data"]["channel"] for e in events(plaint)) == ["email"] * 3 + ["sms"] * 3


# ---------------------------------------------------------------------------- 3. desk actions


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_solution_result_and_survey_mails_follow_the_desk(plaint, sinks, lang):
    smtp, gateway = sinks.smtp(), sinks.http()
    desk, _ = start_stack(plaint, notify_config(plaint, smtp=smtp, sms=gateway))
    data = complaint(plaint, lang)
    address, phone = data["customer"]["email"], data["customer"]["phone"]
    case_id, case_no = submit(plaint, data)
    wait_routed(plaint, case_id)
    smtp.wait_for(address, 1)
    solution = {"zh": f"为您办理全额退款并上门取回 {secrets.token_hex(3)}",
                "en": f"a full refund and a courier to collect it {secrets.token_hex(3)}"}[lang]
    plaint.remember_private(solution)

    def act(action, **fields):
        r = http_call(desk.http_addr, "POST", f"/v1/cases/{case_id}/actions",
                      {"action": action, "actor": "agent.e2e", **fields})
        assert r.status == 200, f"{action}: {r}"
        return r.json

    act("acknowledge", comment="called back")
    assert act("propose", solution=solution, solution_type="refund")["state"] == \
        "solution_proposed"
    mails = smtp.wait_for(address, 2)
    assert mails[1].subject == render("solution", lang, "subject", case_no=case_no)
    assert solution in mails[1].text and case_no in mails[1].text
    assert act("feedback", satisfied=True)["state"] == "resolved"
    mails = smtp.wait_for(address, 3)
    assert mails[2].subject == render("result", lang, "subject", case_no=case_no)
    assert case_no in mails[2].text
    act("review", comment="by the book")
    assert act("close", reason="archived")["state"] == "closed"
    mails = smtp.wait_for(address, 4)
    assert mails[3].subject == render("survey", lang, "subject", case_no=case_no)
    assert mails[3].text == render("survey", lang, "text", case_no=case_no,
                                   name=data["customer"]["name"])
    gateway.wait(lambda rs: len(rs) >= 2, 10, "the survey SMS")
    assert [r.json["to"] for r in gateway.all()] == [phone, phone]
    assert gateway.all()[1].json["text"] == render("survey", lang, "sms", case_no=case_no)

    # Nothing else reaches the customer (acknowledged, feedback, reviewed tell nothing).
    harness.wait_until(lambda: all_sent(plaint), 10, "every notification sent")
    time.sleep(timeout(0.5))
    assert len(smtp.all()) == 4 and len(gateway.all()) == 2
    assert len({m.delivery for m in smtp.all()}) == 4
    kinds = [(r["event_type"], r["kind"], r["channel"]) for r in outbox(plaint)]
    assert kinds == [("case.received", "acknowledgement", "email"),
                     ("case.received", "acknowledgement", "sms"),
                     ("case.solution_proposed", "solution", "email"),
                     ("case.resolved", "result", "email"),
                     ("case.closed", "survey", "email"),
                     ("case.closed", "survey", "sms")], kinds
    evs = desk_events(desk)
    assert len(evs) == 6 and {e["type"] for e in evs} == {"notification.sent"}
    check_notification_events(evs, list(plaint.contact_data))


# ---------------------------------------------------------------------------- 4. webhooks


def verify(req, secret):
    sig = req.headers.get("x-plaint-signature", "")
    want = "sha256=" + hmac.new(secret.encode(), req.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, want)


def test_staff_alert_webhook_is_signed_and_names_the_person(plaint, sinks):
    staff = sinks.http()
    desk, _ = start_stack(plaint, notify_config(plaint, hooks=[
        hook("staff-alerts", staff, ["case.routed", "case.assigned"])]))
    data = complaint(plaint, "en")
    case_id, case_no = submit(plaint, data)
    assignee, _, _ = wait_routed(plaint, case_id)
    routed_seq = plaint.sql("SELECT seq FROM events WHERE case_id = %s AND type = 'case.routed'",
                            case_id)[0][0]
    [req] = staff.wait(lambda rs: len(rs) >= 1, 15, "the routing alert")
    assert req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", req.headers["x-plaint-signature"])
    assert verify(req, "e2e-hook-secret"), "the signature does not verify with the secret"
    assert not verify(req, "another-secret")
    body = req.json
    assert UUID.match(body["delivery_id"]) and req.headers["x-plaint-delivery"] == \
        body["delivery_id"]
    assert req.headers["x-plaint-event"] == "case.routed"
    assert req.headers["x-plaint-attempt"] == "1"
    expected_to = assignee or "staff-alerts"
    assert (body["webhook"], body["kind"], body["to"]) == ("staff-alerts", "assignment",
                                                           expected_to), body
    assert body["event"]["type"] == "case.routed" and body["event"]["seq"] == routed_seq
    d = body["event"]["data"]
    assert (d["case_id"], d["case_no"], d["assignee"]) == (case_id, case_no, assignee)
    assert "@" not in req.body.decode("utf-8"), "an address in a staff alert"

    r = http_call(desk.http_addr, "POST", f"/v1/cases/{case_id}/actions",
                  {"action": "assign", "actor": "sup.e2e", "assignee": "agent.e2e.night"})
    assert r.status == 200, r
    reqs = staff.wait(lambda rs: len(rs) >= 2, 15, "the assignment alert")
    second = reqs[1]
    assert verify(second, "e2e-hook-secret")
    assert second.headers["x-plaint-event"] == "case.assigned"
    assert (second.json["kind"], second.json["to"]) == ("assignment", "agent.e2e.night")
    assert second.json["delivery_id"] != body["delivery_id"]
    harness.wait_until(lambda: all_sent(plaint) and len(events(plaint)) == 2, 10, "recorded")
    evs = desk_events(desk)
    check_notification_events(evs, list(plaint.contact_data),
                              people=(expected_to, "agent.e2e.night"))
    assert [(e["data"]["to"], e["data"]["channel"], e["data"]["event"]) for e in evs] == [
        (expected_to, "webhook", "case.routed"), ("agent.e2e.night", "webhook", "case.assigned")]
    assert [e["data"]["delivery_id"] for e in evs] == [body["delivery_id"],
                                                      second.json["delivery_id"]]


def test_a_webhook_without_a_name_is_called_by_its_place(plaint, sinks):
    """A webhook's name defaults to its place in the list ("webhooks[0]"): in the body, the
    outbox key and the events."""
    receiver = sinks.http()
    unnamed = hook("x", receiver, ["case.received"])
    del unnamed["name"]
    start_stack(plaint, notify_config(plaint, hooks=[unnamed]), pipeline=False, desk=False)
    case_id, _ = submit(plaint, complaint(plaint, "en"))
    [req] = receiver.wait(lambda rs: rs, 10, "the webhook")
    assert (req.json["webhook"], req.json["to"]) == ("webhooks[0]", "webhooks[0]"), req.json
    assert plaint.sql("SELECT key FROM outbox")[0][0].endswith("/webhook:webhooks[0]/webhook")
    harness.wait_until(lambda: events(plaint), 10, "notification.sent")
    assert events(plaint)[0]["data"]["to"] == "webhooks[0]"


def test_a_webhook_for_notification_events_is_not_fed_its_own(plaint, sinks):
    """A webhook that wants "notification." hears about the case, the mail and its own delivery
    of the case event, and then nothing more: every delivery of a notification.* event makes
    another notification.sent, an endless chain (5 deliveries a second) unless it stops."""
    smtp, ops = sinks.smtp(), sinks.http()
    start_stack(plaint, notify_config(plaint, smtp=smtp, hooks=[
        hook("ops", ops, ["case.received", "notification."])]), pipeline=False, desk=False)
    data = complaint(plaint, "en")
    submit(plaint, data)
    smtp.wait_for(data["customer"]["email"])
    harness.wait_until(lambda: len(ops.all()) >= 3 and all_sent(plaint), 10, "three webhooks")
    time.sleep(timeout(1.5))
    # case.received; notification.sent of the mail; notification.sent of the webhook's
    # delivery of case.received. Not: notification.sent of a delivery of a notification.sent.
    got = sorted((r.headers["x-plaint-event"], r.json["event"]["data"].get("event"),
                  r.json["event"]["data"].get("channel")) for r in ops.all())
    assert got == [("case.received", None, "email"),
                   ("notification.sent", "case.received", "email"),
                   ("notification.sent", "case.received", "webhook")], got
    assert plaint.sql("SELECT count(*) FROM outbox")[0][0] == 4


def test_webhook_retries_then_succeeds_or_goes_dead(plaint, sinks):
    flaky = sinks.http(lambda req, n: 500 if n == 1 else 200)
    down = sinks.http(lambda req, n: 500)
    mute = sinks.http(lambda req, n: (200, timeout(30)))  # never answers in time
    cfg = notify_config(plaint, attempts=3, hooks=[
        hook("flaky", flaky, ["case.routed"]), hook("down", down, ["case.routed"]),
        hook("mute", mute, ["case.routed"], timeout_s="300ms")])
    desk, notifier = start_stack(plaint, cfg)
    data = complaint(plaint, "zh")
    case_id, case_no = submit(plaint, data)
    assignee, _, _ = wait_routed(plaint, case_id)
    to = assignee or "flaky"

    harness.wait_until(lambda: plaint.sql("SELECT count(*) FROM outbox WHERE state = 'dead'")
                       [0][0] == 2 and all_sent(plaint), 20, "two dead rows and one sent")
    time.sleep(timeout(0.5))  # nothing more is tried

    reqs = flaky.all()
    assert len(reqs) == 2, reqs
    assert [r.headers["x-plaint-attempt"] for r in reqs] == ["1", "2"]
    assert len({r.headers["x-plaint-delivery"] for r in reqs}) == 1
    assert reqs[0].body == reqs[1].body, "a retry sends another body"
    assert all(verify(r, "e2e-hook-secret") for r in reqs)
    # The retry waits the backoff (200 ms, jitter +-20%) after the failed answer.
    assert reqs[1].at - reqs[0].answered_at >= 0.15, reqs[1].at - reqs[0].answered_at
    for sink in (down, mute):
        got = sink.all()
        assert [r.headers["x-plaint-attempt"] for r in got] == ["1", "2", "3"], got
        assert len({r.headers["x-plaint-delivery"] for r in got}) == 1

    evs = desk_events(desk)
    sent = [e["data"] for e in evs if e["type"] == "notification.sent"]
    failed = [e["data"] for e in evs if e["type"] == "notification.failed"]
    assert len(sent) == 1 and len(failed) == 2, evs
    assert (sent[0]["attempt"], sent[0]["delivery_id"], sent[0]["to"]) == (
        2, reqs[0].headers["x-plaint-delivery"], to)
    by_delivery = {f["delivery_id"]: f for f in failed}
    for sink, why in ((down, "HTTP 500"), (mute, "")):
        f = by_delivery[sink.all()[0].headers["x-plaint-delivery"]]
        assert f["final"] is True and f["attempts"] == 3, f
        assert f["channel"] == "webhook" and f["kind"] == "assignment" and f["to"] == to
        assert why in f["error"], f
        assert (f["case_id"], f["case_no"]) == (case_id, case_no)
    check_notification_events(evs, list(plaint.contact_data), people=(to,))

    # The operator's dead letters (services/notification/README.md).
    dead = plaint.sql("SELECT outbox_id, created_at, event_type, kind, channel, recipient,"
                      " attempts, last_error FROM outbox WHERE state = 'dead'"
                      " ORDER BY created_at")
    assert len(dead) == 2 and all(r[6] == 3 and r[7] for r in dead), dead
    assert {r[2] for r in dead} == {"case.routed"}
    assert metric(notifier, "plaint_notifications_total", outcome="sent") == 1
    assert metric(notifier, "plaint_notifications_total", outcome="failed") == 2
    assert metric(notifier, "plaint_notifications_total", outcome="retried") == 5


def test_a_slow_receiver_does_not_hold_up_other_deliveries(plaint, sinks):
    slow_s = timeout(3)
    smtp = sinks.smtp()
    slow = sinks.http(lambda req, n: (200, slow_s))
    fast = sinks.http()
    start_stack(plaint, notify_config(plaint, smtp=smtp, hooks=[
        hook("slow", slow, ["case.routed"], timeout_s="20s"),
        hook("fast", fast, ["case.routed"])]), desk=False)
    first = complaint(plaint, "en")
    a, _ = submit(plaint, first)
    slow.wait(lambda rs: len(rs) >= 1, 15, "the slow receiver's first request")
    started = time.monotonic()
    # While the slow receiver sleeps, a new case arrives: its mail and its fast webhook go out.
    second = complaint(plaint, "zh")
    b, _ = submit(plaint, second)
    smtp.wait_for(second["customer"]["email"], 1, timeout_s=slow_s)
    fast.wait(lambda rs: fast.for_case(b), slow_s, "the fast receiver's request for case b")
    waited = time.monotonic() - started
    assert slow.all()[0].answered_at is None, (
        f"the slow receiver answered before the other deliveries went out ({waited:.2f} s)")
    assert len(fast.for_case(a)) == 1
    slow.wait(lambda rs: len(rs) >= 2 and all(r.answered_at for r in rs), 3 * slow_s + 10,
              "both slow requests answered")
    harness.wait_until(lambda: all_sent(plaint), 10, "every notification sent")
    assert plaint.sql("SELECT count(*) FROM outbox WHERE state = 'sent'")[0][0] == 6


def test_a_slow_mail_server_does_not_hold_up_other_deliveries(plaint, sinks):
    """A mail server that takes 3 s to confirm a message (the end of DATA) must not stop the
    webhooks meanwhile: the daemon's loop never blocks."""
    slow_s = timeout(3)
    smtp = sinks.smtp(delay=slow_s)
    fast = sinks.http()

    def edit(doc):
        doc["email"]["timeout"] = "60s"  # the mail is confirmed, not given up

    start_stack(plaint, notify_config(plaint, smtp=smtp, edit=edit, hooks=[
        hook("fast", fast, ["case.routed"])]), desk=False)
    first = complaint(plaint, "en")
    submit(plaint, first)
    [mail] = smtp.wait_for(first["customer"]["email"], 1)
    # While the first mail waits for its confirmation, a new case is routed.
    case_id, _ = submit(plaint, complaint(plaint, "zh"))
    fast.wait(lambda rs: fast.for_case(case_id), 2 * slow_s + 10, "the routing webhook")
    got = fast.for_case(case_id)[0]
    assert mail.answered_at is None or got.at < mail.answered_at, (
        f"the webhook waited {got.at - mail.at:.2f} s, until the mail server confirmed the "
        f"mail ({mail.answered_at - mail.at:.2f} s): the loop was blocked")


# ---------------------------------------------------------------------------- 5. crashes


def test_kill9_mid_stream_resends_at_most_once_with_the_same_delivery_id(plaint, sinks):
    smtp = sinks.smtp(delay=timeout(0.5))  # received, confirmed half a second later
    cfg = notify_config(plaint, smtp=smtp)
    start_stack(plaint, cfg, pipeline=False, desk=False)
    notifier = plaint.daemons[-1]
    people = [complaint(plaint, "zh" if i % 2 else "en") for i in range(8)]
    cases = [submit(plaint, d) for d in people]
    smtp.wait(lambda ms: len(ms) >= 2, 15, "mails on the way")
    notifier.kill9()
    in_flight = plaint.sql("SELECT count(*) FROM outbox WHERE state = 'sending'")[0][0]
    assert in_flight >= 1, "nothing was in flight at the crash"
    received_before = len(smtp.all())

    # The crashed sender's leases (60 s) run out: done here, instead of waiting a minute, and
    # before the next sender starts (its own claims keep their leases).
    plaint.sql("UPDATE outbox SET lease_until = now() - interval '1 second'"
               " WHERE state = 'sending'")
    again = plaint.start_notification(cfg, **FAST, **{SECRET_ENV: "x"})
    harness.wait_until(lambda: all_sent(plaint), 30, "every mail sent after the restart")
    time.sleep(timeout(0.5))
    mails = smtp.all()
    by_delivery = {}
    for m in mails:
        by_delivery.setdefault(m.delivery, []).append(m)
    for data, (case_id, case_no) in zip(people, cases):
        mine = smtp.to(data["customer"]["email"])
        assert len({m.delivery for m in mine}) == 1, f"{case_no}: several deliveries: {mine}"
        assert 1 <= len(mine) <= 2, f"{case_no}: {len(mine)} mails"
        assert all(case_no in m.subject for m in mine)
        if len(mine) == 2:  # the resend is the same message, for the receiver to drop
            assert mine[0].message_id == mine[1].message_id == f"<{mine[0].delivery}@plaint>"
            assert mine[0].subject == mine[1].subject and mine[0].text == mine[1].text
    resent = [d for d, ms in by_delivery.items() if len(ms) == 2]
    assert 1 <= len(resent) <= in_flight, (resent, in_flight, received_before)
    assert len(mails) == len(people) + len(resent)
    sent = events(plaint, "notification.sent")
    assert len(sent) == len(people), "one notification.sent per mail"
    assert {e["data"]["delivery_id"] for e in sent} == set(by_delivery)
    for e in sent:
        want = 2 if e["data"]["delivery_id"] in resent else 1
        assert e["data"]["attempt"] >= want, e["data"]

    # A clean restart repeats nothing.
    assert again.stop() == 0
    plaint.start_notification(cfg, **FAST, **{SECRET_ENV: "x"})
    late = complaint(plaint, "en")
    submit(plaint, late)
    smtp.wait_for(late["customer"]["email"], 1)
    time.sleep(timeout(0.5))
    assert len(smtp.all()) == len(mails) + 1, smtp.all()[len(mails):]


def test_sigterm_finishes_or_hands_back_a_webhook_in_flight(plaint, sinks):
    """The contract: SIGTERM stops a daemon cleanly; it finishes or hands back the work it
    holds, within 10 s. A delivery in flight is either recorded, or the next sender can take it
    at once (not after its lease of a minute runs out)."""
    slow = sinks.http(lambda req, n: (200, timeout(3)) if n == 1 else 200)
    cfg = notify_config(plaint, hooks=[hook("slow", slow, ["case.routed"], timeout_s="20s")])
    start_stack(plaint, cfg, desk=False)
    notifier = plaint.daemons[-1]
    case_id, _ = submit(plaint, complaint(plaint, "en"))
    slow.wait(lambda rs: rs, 15, "the webhook in flight")
    assert notifier.stop() == 0
    [row] = outbox(plaint)
    if row["state"] == "sent":
        return  # finished
    leased = plaint.sql("SELECT lease_until > now() + interval '5 seconds' FROM outbox")[0][0]
    plaint.start_notification(cfg, **FAST, **{SECRET_ENV: "e2e-hook-secret"})
    if not within(lambda: all_sent(plaint), 5):
        pytest.fail(f"after SIGTERM the delivery in flight is {row['state']!r}"
                    f"{', leased for a minute' if leased else ''}: a new sender did not send it "
                    f"within {timeout(5):.0f} s", pytrace=False)
    reqs = slow.all()
    assert len({r.headers["x-plaint-delivery"] for r in reqs}) == 1 and len(reqs) == 2


def test_sigterm_stops_within_10s_while_the_mail_server_hangs(plaint, sinks):
    """A mail server that never confirms a message (here: not within 30 s) must not keep the
    daemon from stopping within the contract's 10 s; the e-mail timeout is the shipped 20 s."""
    smtp = sinks.smtp(delay=30)

    def edit(doc):
        doc["email"]["timeout"] = "20s"

    cfg = notify_config(plaint, smtp=smtp, edit=edit)
    start_stack(plaint, cfg, pipeline=False, desk=False)
    notifier = plaint.daemons[-1]
    data = complaint(plaint, "en")
    submit(plaint, data)
    smtp.wait_for(data["customer"]["email"], 1)
    started = time.monotonic()
    assert notifier.stop(timeout=10) == 0
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------------- 6. erasure


def test_erasure_clears_the_outbox_of_the_customers_cases(plaint, sinks):
    smtp, gateway = sinks.smtp(), sinks.http()
    desk, _ = start_stack(plaint, notify_config(plaint, smtp=smtp, sms=gateway, attempts=4))
    gone = complaint(plaint, "zh")
    gone_again = complaint(plaint, "zh", customer={**gone["customer"], "name": None})
    stays = complaint(plaint, "en")
    late = complaint(plaint, "en")
    smtp.refuse.add(late["customer"]["email"])  # its mail waits for a retry when erased
    cases = {k: submit(plaint, d) for k, d in
             (("gone", gone), ("gone_again", gone_again), ("stays", stays), ("late", late))}
    smtp.wait_for(gone["customer"]["email"], 2)
    smtp.wait_for(stays["customer"]["email"], 1)
    harness.wait_until(lambda: smtp.refused, 10, "the refused mail tried once")

    def erase(**who):
        r = http_call(desk.http_addr, "POST", "/v1/erasure", {**who, "actor": "dpo.e2e"})
        assert r.status == 200, r
        return r.json

    got = erase(email=gone["customer"]["email"])
    assert got["erased_cases"] == 2, got
    assert erase(email=late["customer"]["email"])["erased_cases"] == 1
    erased = [cases[k][0] for k in ("gone", "gone_again", "late")]
    for row in outbox(plaint, "case_id = ANY(%s::uuid[])", erased):
        assert row["address"] is None and row["payload"] == {"erased": True}, row
    for row in outbox(plaint, "case_id = %s", cases["stays"][0]):
        assert row["address"] in (stays["customer"]["email"], stays["customer"]["phone"])
        assert row["payload"]["text"]
    dump = json.dumps([r[0] for r in plaint.sql("SELECT to_jsonb(o) FROM outbox o")],
                      ensure_ascii=False)
    for s in (gone["customer"]["email"], gone["customer"]["phone"], gone["customer"]["name"],
              late["customer"]["email"], late["customer"]["phone"], late["customer"]["name"]):
        assert s not in dump, f"{s!r} still in the outbox"

    # The mail that was waiting for its retry is never sent; it ends dead, saying why.
    smtp.refuse.clear()
    harness.wait_until(lambda: all_sent(plaint), 15, "every row sent or dead")
    time.sleep(timeout(0.5))
    assert smtp.to(late["customer"]["email"]) == []
    late_rows = outbox(plaint, "case_id = %s AND channel = 'email'", cases["late"][0])
    assert late_rows[0]["state"] == "dead", late_rows
    # Events after the erasure (case.erased, and whatever comes) give no row with an address.
    harness.wait_until(lambda: plaint.sql("SELECT seq FROM event_cursors")[0][0] >=
                       plaint.sql("SELECT max(seq) FROM events")[0][0], 10, "the notifier read on")
    assert plaint.sql("SELECT count(*) FROM outbox WHERE case_id = ANY(%s::uuid[])"
                      " AND address IS NOT NULL", erased)[0][0] == 0
    check_notification_events(desk_events(desk), list(plaint.contact_data))


# ---------------------------------------------------------------------------- 7. configuration


def run_bad(plaint, cfg_dir=None, **env):
    """Starts plaint-notification with a bad file or setting; returns (exit status, log). A
    daemon that gets as far as "started" accepted it: stopped, and the status is "started"."""
    d = plaint.daemon("plaint-notification", PLAINT_CONFIG_DIR=str(cfg_dir or harness.CONFIG_DIR),
                      **env)
    d.start()
    harness.wait_until(lambda: not d.alive() or '"msg":"started"' in d.log_text(), 20,
                       "plaint-notification neither exited nor started")
    if d.alive():
        d.stop()
        return "started", d.log_text()
    return d.proc.returncode, d.log_text()


def set_path(doc, path, value):
    keys = path.split("/")
    for k in keys[:-1]:
        doc = doc[int(k)] if isinstance(doc, list) else doc[k]
    last = keys[-1]
    if value is DELETE:
        del doc[last]
    elif isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


DELETE = object()
A_HOOK = {"name": "staff", "url": "https://hooks.e2e.example/plaint", "secret_env": SECRET_ENV,
          "events": ["case.routed"]}

# (label, [(path, value)], what the message must name)
BAD_CONFIGS = [
    ("starttls not a boolean", [("email/starttls", "yes")], "email.starttls"),
    ("email url with an http scheme", [("email/url", "http://127.0.0.1:25")], "email.url"),
    ("email timeout a number", [("email/timeout", 20)], "email.timeout"),
    ("email timeout not a duration", [("email/timeout", "soon")], "email.timeout"),
    ("from not a string", [("email/from", ["care@example.com"])], "email.from"),
    ("sms body not a string", [("sms/body", {"to": 1})], "sms.body"),
    ("sms url with an ftp scheme", [("sms/url", "ftp://sms.e2e.example/send")], "sms.url"),
    ("webhook url with an ftp scheme", [("webhooks/0/url", "ftp://hooks.e2e.example/x")],
     "webhooks[0].url"),
    ("webhook event not a string", [("webhooks/0/events", ["case.routed", 7])],
     "webhooks[0].events"),
    ("webhook timeout zero", [("webhooks/0/timeout", "0s")], "webhooks[0].timeout"),
    ("attempts a string", [("retry/attempts", "five")], "retry.attempts"),
    ("attempts zero", [("retry/attempts", 0)], "retry.attempts"),
    ("attempts not whole", [("retry/attempts", 2.5)], "retry.attempts"),
    ("backoff not a duration", [("retry/backoff", "a little")], "retry.backoff"),
    ("unknown template kind", [("customer/case.received/kind", "greeting")],
     "customer.case.received.kind"),
    ("rule without kind", [("customer/case.closed/kind", DELETE)], "customer.case.closed.kind"),
    ("unknown channel", [("customer/case.closed/channels", ["email", "fax"])],
     "customer.case.closed.channels"),
    # Wrong types of whole sections and lists.
    ("email not an object", [("email", "smtp://127.0.0.1:25")], "email"),
    ("retry not an object", [("retry", 3)], "retry"),
    ("webhooks not an array", [("webhooks", A_HOOK)], "webhooks"),
    ("webhook events not an array", [("webhooks/0/events", "case.")], "webhooks[0].events"),
    ("customer not an object", [("customer", [{"kind": "acknowledgement",
                                               "channels": ["email"]}])], "customer"),
    ("channels not an array", [("customer/case.closed/channels", "email")],
     "customer.case.closed.channels"),
    ("template text not a string", [("templates/survey/en/text", 5)],
     "templates.survey.en.text"),
    ("templates not an object", [("templates", ["acknowledgement"])], "templates"),
    ("webhook not an object", [("webhooks/0", "https://hooks.e2e.example/plaint")],
     "webhooks[0]"),
    ("two webhooks of one name", [("webhooks", [A_HOOK, dict(A_HOOK, url="https://b.example/")])],
     'webhooks[1].name "staff"'),
]


@pytest.mark.parametrize("label,edits,field", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_notification_json_exits_78_naming_the_field(plaint, label, edits, field):
    def edit(doc):
        doc["webhooks"] = [dict(A_HOOK)]
        for path, value in edits:
            set_path(doc, path, value)

    rc, log = run_bad(plaint, notify_config(plaint, edit=edit))
    assert rc == 78, f"{label}: exit {rc}, want 78; log:\n{log[-1500:]}"
    assert field in log, f"{label}: the message does not name {field!r}:\n{log[-1500:]}"
    assert "notification.json" in log and "hint:" in log, log[-1500:]


def test_every_problem_is_reported_and_broken_json_is_refused(plaint):
    def edit(doc):
        doc["email"]["starttls"] = "no"
        doc["retry"]["attempts"] = 0
        doc["webhooks"] = [dict(A_HOOK, url="gopher://x")]
        doc["customer"]["case.closed"]["kind"] = "farewell"

    rc, log = run_bad(plaint, notify_config(plaint, edit=edit))
    assert rc == 78, log
    for field in ("email.starttls", "retry.attempts", "webhooks[0]", "customer.case.closed"):
        assert field in log, f"{field} not reported:\n{log}"

    broken = plaint.config_copy("broken")
    for text in ('{"retry": {"attempts": 3,}', '["email", "sms"]'):
        (broken / "notification.json").write_text(text, encoding="utf-8")
        rc, log = run_bad(plaint, broken)
        assert rc == 78 and "notification.json" in log, f"{text}: {rc}\n{log}"

    # The shipped file is valid: every channel off, the daemon runs.
    d = plaint.start_notification(harness.CONFIG_DIR)
    d.wait_log('"msg":"notifying","email":"off","sms":"off","webhooks":"1"', 10)
    assert d.stop() == 0


@pytest.mark.parametrize("name,value", [("PLAINT_NOTIFY_TICK", "fast"),
                                        ("PLAINT_NOTIFY_TICK", "1ms"),
                                        ("PLAINT_NOTIFY_CONCURRENCY", "0"),
                                        ("PLAINT_NOTIFY_CONCURRENCY", "many")])
def test_bad_settings_exit_78(plaint, name, value):
    rc, log = run_bad(plaint, **{name: value})
    assert rc == 78 and name in log, f"exit {rc}:\n{log}"


def test_help_lists_the_notification_settings(plaint):
    import subprocess

    res = subprocess.run([harness.binary_path("plaint-notification"), "--help"],
                         capture_output=True, text=True, timeout=timeout(10),
                         env=plaint.env())
    assert res.returncode == 0, res
    for name, default in (("PLAINT_NOTIFY_TICK", "200ms"), ("PLAINT_NOTIFY_CONCURRENCY", "32"),
                          ("PLAINT_CONFIG_DIR", "deploy/config"),
                          ("PLAINT_METRICS_ADDR", "0.0.0.0:9105")):
        assert re.search(rf"^{name} \(default: \"?{re.escape(default)}\"?\)", res.stdout, re.M), \
            f"{name} missing:\n{res.stdout}"
    res = subprocess.run([harness.binary_path("plaint-notification"), "--version"],
                         capture_output=True, text=True, timeout=timeout(10), env=plaint.env())
    assert res.returncode == 0 and res.stdout.startswith("plaint-notification "), res
