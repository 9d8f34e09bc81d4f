"""The desk with bearer tokens (desk.json), erasure, and the dashboard in a real browser.

Real processes: PostgreSQL, intake, classifier, routing and the desk; headless Chromium for the
dashboard. Tokens come from `plaintctl token`, so the test also proves the tool's entries load.
"""
import json
import os
import pathlib
import shutil
import subprocess
import uuid

import pytest

import harness
from harness import http

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The dashboard screenshot is kept here (git-ignored), for people to look at.
ARTIFACTS = pathlib.Path(os.environ.get("PLAINT_TEST_ARTIFACTS") or harness.ROOT / "var" / "test-artifacts")


def make_token(plaint, name, role, dept=None):
    args = ["token", name, role] + ([dept] if dept else [])
    out = plaint.ctl(*args)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    token = lines[0].split("token: ", 1)[1]
    entry = json.loads(lines[-1])
    assert entry["name"] == name and entry["role"] == role and len(entry["sha256"]) == 64
    assert token not in out.stdout.split("\n", 1)[1], "the entry must not contain the token"
    return token, entry


@pytest.fixture
def secured(plaint):
    """intake + classifier + routing + a desk with four tokens; returns (desk, tokens)."""
    cfg = plaint.config_copy("secured")
    tokens, entries = {}, []
    for name, role, dept in (("crm", "integrator", None), ("agent.lg.jiang", "agent", "logistics"),
                             ("sup.qa.wu", "supervisor", None), ("admin.ops", "admin", None)):
        tokens[role], entry = make_token(plaint, name, role, dept)
        entries.append(entry)
    entries[1]["pii"] = False  # the agent may not see contact data
    (cfg / "desk.json").write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    plaint.start_intake()
    plaint.start_classifier()
    plaint.start_routing()
    desk = plaint.start_desk(PLAINT_CONFIG_DIR=str(cfg))
    return desk, tokens


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def submit(plaint, desk, token, body, ext=None):
    data = {"external_id": ext or f"A-{uuid.uuid4()}", "channel": "web", **body}
    plaint.remember_private(*(v for v in json.dumps(data, ensure_ascii=False).split('"')
                              if len(v) > 6 and v not in ("external_id", "customer")))
    r = http(desk.http_addr, "POST", "/v1/complaints", data, bearer(token))
    assert r.status == 201, r
    return r.json


def wait_routed(plaint, case_id):
    plaint.wait_until(lambda: plaint.sql("SELECT state FROM cases WHERE case_id = %s",
                                         case_id)[0][0] == "routed",
                      15, f"case {case_id} was not routed")


def test_tokens_roles_scoping_and_masking(plaint, secured):
    desk, tok = secured
    addr = desk.http_addr
    assert "tokens loaded" in desk.log_text()
    # No token, a bad token, a malformed header: 401 with a hint, and WWW-Authenticate.
    for headers in ({}, bearer("plt_nope"), {"Authorization": "Basic abc"}):
        r = http(addr, "GET", "/v1/cases", headers=headers)
        assert r.status == 401, r
        assert r.json["error"]["code"] == "unauthorized"
        assert "bearer" in r.headers.get("www-authenticate", "").lower()
    # /healthz, /metrics and the page itself need no token.
    assert http(addr, "GET", "/healthz").status == 200
    assert http(addr, "GET", "/metrics").status == 200
    assert http(addr, "GET", "/").status == 200

    # The integrator submits and reads events, nothing else.
    late = submit(plaint, desk, tok["integrator"],
                  {"customer": {"id": "C-77", "phone": "+86 138 0013 8000",
                                "email": "li.wei@example.com"},
                   "body": "My parcel was supposed to arrive a week ago and the courier "
                           "tracking has not moved since; the delivery is lost."})
    assert http(addr, "GET", "/v1/events?after=0", headers=bearer(tok["integrator"])).status == 200
    r = http(addr, "GET", f"/v1/cases/{late['case_id']}", headers=bearer(tok["integrator"]))
    assert r.status == 403 and r.json["error"]["code"] == "forbidden", r
    wait_routed(plaint, late["case_id"])
    dept = plaint.sql("SELECT department, departments FROM cases WHERE case_id = %s",
                      late["case_id"])[0]
    assert "logistics" in dept[1], dept  # a lost parcel is the logistics department's

    # The supervisor sees contact data; the agent (pii false) sees it masked.
    sup = http(addr, "GET", f"/v1/cases/{late['case_id']}", headers=bearer(tok["supervisor"]))
    assert sup.status == 200
    assert sup.json["customer"]["phone"] == "+86 138 0013 8000"
    ag = http(addr, "GET", f"/v1/cases/{late['case_id']}", headers=bearer(tok["agent"]))
    assert ag.status == 200, ag
    assert ag.json["customer"]["phone"] == "****8000"
    assert ag.json["customer"]["email"] == "l***@example.com"
    assert "li.wei" not in ag.body.decode()

    # An agent only works their own department's cases.
    other = submit(plaint, desk, tok["integrator"],
                   {"customer": {"id": "C-78"},
                    "body": "I was charged twice for the same order and the second payment "
                            "was never refunded to my card."})
    wait_routed(plaint, other["case_id"])
    odepts = plaint.sql("SELECT departments FROM cases WHERE case_id = %s", other["case_id"])[0][0]
    assert "logistics" not in odepts, odepts  # a double charge is finance's
    r = http(addr, "GET", f"/v1/cases/{other['case_id']}", headers=bearer(tok["agent"]))
    assert r.status == 403, r
    r = http(addr, "POST", f"/v1/cases/{other['case_id']}/actions",
             {"action": "acknowledge"}, bearer(tok["agent"]))
    assert r.status == 403, r
    listed = http(addr, "GET", "/v1/cases?limit=500", headers=bearer(tok["agent"]))
    assert listed.status == 200
    assert all("logistics" in c["departments"] for c in listed.json["cases"])
    r = http(addr, "GET", "/v1/cases?department=finance", headers=bearer(tok["agent"]))
    assert r.status == 400 and r.json["error"]["errors"][0]["path"] == "department"

    # The actor is the token's name; naming someone else is refused.
    r = http(addr, "POST", f"/v1/cases/{late['case_id']}/actions",
             {"action": "acknowledge", "actor": "someone.else"}, bearer(tok["supervisor"]))
    assert r.status == 403, r
    r = http(addr, "POST", f"/v1/cases/{late['case_id']}/actions",
             {"action": "acknowledge"}, bearer(tok["supervisor"]))
    assert r.status == 200 and r.json["actor"] == "sup.qa.wu", r
    ev = plaint.sql("SELECT data->>'actor' FROM events WHERE case_id = %s AND type = "
                    "'case.acknowledged'", late["case_id"])
    assert ev == [("sup.qa.wu",)]
    # Review and close are for supervisors: an agent gets 403 before any state check.
    r = http(addr, "POST", f"/v1/cases/{late['case_id']}/actions",
             {"action": "close"}, bearer(tok["agent"]))
    assert r.status == 403, r
    # Erasure is for admins only.
    r = http(addr, "POST", "/v1/erasure", {"customer_id": "C-77"}, bearer(tok["supervisor"]))
    assert r.status == 403


def test_erasure_keeps_statistics(plaint, secured):
    desk, tok = secured
    addr = desk.http_addr
    mine = []
    for i in range(3):
        mine.append(submit(plaint, desk, tok["integrator"],
                           {"customer": {"name": "Zhang Wei", "phone": f"+86 139 1111 22{i}0",
                                         "email": "zhang.wei@example.org"},
                            "subject": "Broken blender",
                            "body": f"The blender jar cracked on day {i + 2}; I want a refund.",
                            "demand": "refund to my card"}))
    other = submit(plaint, desk, tok["integrator"],
                   {"customer": {"email": "someone.else@example.org"},
                    "body": "The store clerk was rude to me when I asked for help."})
    for c in mine + [other]:
        wait_routed(plaint, c["case_id"])
    http(addr, "POST", f"/v1/cases/{mine[0]['case_id']}/actions",
         {"action": "note", "note": "Called Zhang Wei on +86 139 1111 2200"},
         bearer(tok["supervisor"]))
    before = http(addr, "GET", "/v1/stats?group_by=category", headers=bearer(tok["admin"])).json

    bad = http(addr, "POST", "/v1/erasure", {}, bearer(tok["admin"]))
    assert bad.status == 400 and bad.json["error"]["errors"][0]["path"] == "customer_id"
    r = http(addr, "POST", "/v1/erasure", {"email": " Zhang.Wei@Example.org"}, bearer(tok["admin"]))
    assert r.status == 200, r
    assert r.json["erased_cases"] == 3 and r.json["pseudonym"].startswith("anon-")

    after = http(addr, "GET", "/v1/stats?group_by=category", headers=bearer(tok["admin"])).json
    assert after["total"] == before["total"] and after["groups"] == before["groups"]
    for c in mine:
        row = plaint.sql("SELECT customer_id, customer_name, customer_phone, customer_email, "
                         "subject, body, demand, submission::text, erased_at IS NOT NULL "
                         "FROM cases WHERE case_id = %s", c["case_id"])[0]
        assert row[0] == r.json["pseudonym"] and row[1:4] == (None, None, None)
        assert row[4] == "[erased]" and row[5] == "[erased]" and row[6] == "[erased]"
        assert "zhang" not in row[7].lower() and "139" not in row[7] and row[8]
        events = plaint.sql("SELECT type, data::text FROM events WHERE case_id = %s",
                            c["case_id"])
        assert ("case.erased" in [t for t, _ in events])
        assert all("Zhang" not in d and "2200" not in d for _, d in events)
    # The other customer is untouched.
    assert plaint.sql("SELECT customer_email FROM cases WHERE case_id = %s",
                      other["case_id"])[0][0] == "someone.else@example.org"
    # Erased events are valid events (numbered by the hub's sequencer a moment after commit).
    def erased_events():
        page = http(addr, "GET", "/v1/events?after=0&limit=1000",
                    headers=bearer(tok["admin"])).json
        got = [e for e in page["events"] if e["type"] == "case.erased"]
        return got if len(got) == 3 else None
    erased = harness.wait_until(erased_events, 10, "three case.erased events in the log")
    for e in erased:
        harness.validate_event(e)


@pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (scripts/lib.sh "
                                         "installs it)")
def test_dashboard_renders_in_chromium(plaint, tmp_path):
    plaint.start_intake()
    plaint.start_classifier()
    plaint.start_routing()
    desk = plaint.start_desk()
    cases = []
    for i, body in enumerate((
            "我的充电宝在充电时突然冒烟起火，差点烧到床单，太危险了！",
            "The courier left my parcel in the rain and it arrived soaked and late.",
            "客服态度很差，电话里直接挂断了我的电话。")):
        plaint.remember_private(body)
        r = http(desk.http_addr, "POST", "/v1/complaints",
                 {"external_id": f"D-{i}", "channel": "web", "customer": {"id": f"DC-{i}"},
                  "body": body})
        assert r.status == 201, r
        cases.append(r.json)
    for c in cases:
        wait_routed(plaint, c["case_id"])
    # One case is past its first-response deadline: it must show as the fire.
    plaint.sql("UPDATE cases SET first_response_due = now() - interval '5 minutes' "
               "WHERE case_id = %s", cases[0]["case_id"])
    profile = tmp_path / "chromium-profile"
    shot = tmp_path / "dashboard.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,1000",
            "--virtual-time-budget=5000"]
    url = f"http://{desk.http_addr}/"
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=harness.timeout(60))
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'id="n-overdue">1<' in html, html[:3000]
    assert cases[0]["case_no"] in html  # listed among the overdue cases
    assert 'class="tile fire" id="t-overdue"' in html or 'id="t-overdue" class="tile fire"' in html
    status = html[html.index('id="status"') - 40: html.index('id="status"') + 120]
    assert "down" not in status and ("updated" in status or "更新于" in status), status
    for dept in plaint.sql("SELECT DISTINCT department FROM cases"):
        assert f"<td>{dept[0]}</td>" in html
    subprocess.run(base + [f"--screenshot={shot}", url], capture_output=True,
                   timeout=harness.timeout(60), check=True)
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    flavour = "asan" if "asan" in str(harness.bin_dir()) else "normal"
    shutil.copy(shot, ARTIFACTS / f"dashboard-{flavour}.png")
