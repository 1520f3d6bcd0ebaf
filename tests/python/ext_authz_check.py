"""Drives authz's envoy.service.auth.v3.Authorization/Check with stubs generated from Envoy's own
published protos (the `xds-protos` package), not from authz's code.

    XDS_PYTHON ext_authz_check.py TARGET      # TARGET: 127.0.0.1:9191 or unix:/run/authz/grpc.sock

The proxy secret comes from AUTHZ_TEST_SECRET. Exits 1, listing every failure, if a request that
must be denied is allowed, if a denial is not a well-formed one (a successful RPC, a non-OK status,
401/403/503, a JSON body), or if the one request that must be allowed is not.
"""

import json
import os
import sys

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as attrs
from envoy.service.auth.v3 import external_auth_pb2 as ext
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc

OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
GRPC_OK = 0


def http_request(method="GET", path="/api/projects", headers=None, raw=None):
    http = attrs.AttributeContext.HttpRequest(method=method, path=path, headers=headers or {})
    if raw is not None:
        http.header_map.CopyFrom(
            base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v) for k, v in raw])
        )
    return ext.CheckRequest(
        attributes=attrs.AttributeContext(request=attrs.AttributeContext.Request(http=http))
    )


def cases(secret):
    good = {"x-proxy-secret": secret, "x-user-email": "alice@example.com"}
    junk = {f"x-junk-{i:05d}": "j" * 90 for i in range(11_000)}  # about 1 MB of headers
    return [
        ("empty CheckRequest", ext.CheckRequest(), 401),
        ("attributes without a request", ext.CheckRequest(attributes=attrs.AttributeContext()), 401),
        (
            "request without http attributes",
            ext.CheckRequest(
                attributes=attrs.AttributeContext(request=attrs.AttributeContext.Request())
            ),
            401,
        ),
        ("empty headers", http_request(headers={}), 401),
        ("no secret", http_request(headers={"x-user-email": "alice@example.com"}), 401),
        ("wrong secret", http_request(headers={**good, "x-proxy-secret": "wrong-secret"}), 401),
        ("merged secrets", http_request(headers={**good, "x-proxy-secret": f"{secret},{secret}"}), 401),
        ("no user", http_request(headers={"x-proxy-secret": secret}), 401),
        ("not an email", http_request(headers={**good, "x-user-email": "alice"}), 401),
        (
            "two users merged",
            http_request(headers={**good, "x-user-email": "alice@example.com,admin@example.com"}),
            401,
        ),
        (
            "second spelling of the user header",
            http_request(headers={**good, "X-User-Email": "admin@example.com"}),
            401,
        ),
        (
            "raw header map with the user twice",
            http_request(
                headers={},
                raw=[
                    ("x-proxy-secret", secret.encode()),
                    ("x-user-email", b"alice@example.com"),
                    ("x-user-email", b"admin@example.com"),
                ],
            ),
            401,
        ),
        (
            "raw header map, user not UTF-8",
            http_request(
                headers={},
                raw=[("x-proxy-secret", secret.encode()), ("x-user-email", b"\xffalice@example.com")],
            ),
            401,
        ),
        ("1 MB header map without a user", http_request(headers={**junk, "x-proxy-secret": secret}), 401),
        ("1 MB user header", http_request(headers={**good, "x-user-email": "a" * 1_000_000 + "@example.com"}), 401),
        ("no method", http_request(method="", headers=good), 403),
        ("no path", http_request(path="", headers=good), 403),
        ("unknown route", http_request(path="/admin/everything", headers=good), 403),
        ("method not routed", http_request(method="PUT", headers=good), 403),
        ("user in no group", http_request(headers={**good, "x-user-email": "nobody@example.com"}), 403),
        ("suspended user", http_request(headers={**good, "x-user-email": "mallory@example.com"}), 403),
    ]


def check_denied(stub, name, request, status):
    try:
        response = stub.Check(request, timeout=10)
    except grpc.RpcError as e:
        return [f"{name}: the RPC failed ({e.code()}); a denial must be a successful RPC"]
    problems = []
    if response.status.code == GRPC_OK or response.HasField("ok_response"):
        return [f"{name}: ALLOWED, must be denied"]
    denied = response.denied_response
    if not response.HasField("denied_response"):
        problems.append(f"{name}: denial without denied_response")
    if denied.status.code != status:
        problems.append(f"{name}: HTTP status {denied.status.code}, expected {status}")
    try:
        body = json.loads(denied.body)
        if not body.get("reason"):
            problems.append(f"{name}: body without a reason: {denied.body!r}")
    except ValueError:
        problems.append(f"{name}: body is not JSON: {denied.body[:200]!r}")
    headers = {h.header.key: h.header.value for h in denied.headers}
    if headers.get("content-type") != "application/json":
        problems.append(f"{name}: content-type {headers.get('content-type')!r}")
    return problems


def check_allowed(stub, secret):
    name = "member listing projects"
    request = http_request(
        path="/api/projects?limit=5",
        headers={"x-proxy-secret": secret, "x-user-email": "bob@example.com"},
    )
    response = stub.Check(request, timeout=10)
    if response.status.code != GRPC_OK or not response.HasField("ok_response"):
        return [f"{name}: denied ({response.status.message}), must be allowed"]
    ok = response.ok_response
    problems = []
    headers = {h.header.key: h for h in ok.headers}
    for key, value in [("x-authz-user", "bob@example.com"), ("x-authz-groups", "editors,photographers")]:
        h = headers.get(key)
        if h is None or h.header.value != value:
            problems.append(f"{name}: {key} is {h and h.header.value!r}, expected {value!r}")
        elif h.append_action != OVERWRITE or h.HasField("append"):
            problems.append(f"{name}: {key} must overwrite a client's copy, not append")
    if "x-proxy-secret" not in ok.headers_to_remove:
        problems.append(f"{name}: the secret header is not in headers_to_remove")
    return problems


def main():
    if len(sys.argv) != 2 or not os.environ.get("AUTHZ_TEST_SECRET"):
        print(__doc__, file=sys.stderr)
        return 2
    secret = os.environ["AUTHZ_TEST_SECRET"]
    options = [("grpc.max_send_message_length", 8 << 20)]
    if sys.argv[1].startswith("unix:"):
        # grpcio's default authority for a socket is its path, which is not a valid authority.
        options.append(("grpc.default_authority", "localhost"))
    with grpc.insecure_channel(sys.argv[1], options=options) as channel:
        stub = ext_grpc.AuthorizationStub(channel)
        results = [check_allowed(stub, secret)]
        for name, request, status in cases(secret):
            results.append(check_denied(stub, name, request, status))
    failed = [r for r in results if r]
    for problems in failed:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
    print(f"ext_authz_check: {len(results) - len(failed)} of {len(results)} cases as expected")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
