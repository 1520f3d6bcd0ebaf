"""An AuthZEN 1.0 client written from the specification alone (Python's standard library, no
code of authz's): discovers the PDP, sends every case of an interop decision file to the
evaluation endpoint and as one batch to the evaluations endpoint, and checks the HTTP
contract around them.

    python3 authzen_client.py BASE_URL DECISIONS_JSON

The proxy secret comes from AUTHZ_TEST_SECRET (sent in X-Proxy-Secret). Prints one line per
check; exits 1, listing every failure.
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def call(url, body=None, headers=None):
    """(status, headers, parsed JSON body) of a GET (no body) or a JSON POST."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def main():
    base, decisions = sys.argv[1].rstrip("/"), sys.argv[2]
    auth = {"X-Proxy-Secret": os.environ["AUTHZ_TEST_SECRET"]}

    status, _, meta = call(base + "/.well-known/authzen-configuration")
    check(status == 200, "metadata answers 200")
    check(meta.get("policy_decision_point") == base, "policy_decision_point is the base URL")
    single_url = meta.get("access_evaluation_endpoint", "")
    batch_url = meta.get("access_evaluations_endpoint", "")
    check(single_url == base + "/access/v1/evaluation", "access_evaluation_endpoint")
    check(batch_url == base + "/access/v1/evaluations", "access_evaluations_endpoint")

    with open(decisions) as f:
        cases = json.load(f)["evaluation"]
    wrong = 0
    for i, case in enumerate(cases):
        rid = str(uuid.uuid4())
        status, headers, body = call(single_url, case["request"], dict(auth, **{"X-Request-ID": rid}))
        if status != 200 or body.get("decision") is not case["expected"] or headers.get("X-Request-ID") != rid:
            wrong += 1
            print(f"      case {i}: {status} {body} (expected {case['expected']})")
    check(wrong == 0, f"{len(cases) - wrong}/{len(cases)} single evaluations as expected, request ids echoed")

    status, _, body = call(batch_url, {"evaluations": [c["request"] for c in cases]}, auth)
    got = [e.get("decision") for e in (body or {}).get("evaluations", [])]
    check(status == 200 and got == [c["expected"] for c in cases], f"one batch of {len(cases)}: decisions in order")

    status, _, body = call(batch_url, {
        "subject": cases[0]["request"]["subject"],
        "action": {"name": "can_read_todos"},
        "options": {"evaluations_semantic": "permit_on_first_permit"},
        "evaluations": [{"resource": {"type": "todo", "id": str(n)}} for n in range(3)],
    }, auth)
    check(status == 200 and len(body.get("evaluations", [])) == 1, "permit_on_first_permit stops at the first permit")

    status, _, body = call(single_url, cases[0]["request"])
    check(status == 401, "no credentials: 401")
    status, _, body = call(single_url, b"{not json", auth)
    check(status == 400 and isinstance(body, dict) and body.get("message"), "malformed JSON: 400 with a message")
    status, _, body = call(single_url, {"action": {"name": "x"}}, auth)
    check(status == 400 and "subject" in json.dumps(body), "missing subject: 400 naming it")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
