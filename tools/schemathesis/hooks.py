"""Schemathesis hooks: a fresh admin session for every test case.

A fresh login per case keeps a fuzzed logout (scope=global) or a password
change from killing the token the next case uses. A header set by an
OpenAPI link (stateful phase) is kept.
"""
import base64
import json
import os
import time

import requests
import schemathesis

BASE = os.environ["SCHEMATHESIS_BASE_URL"]
# The server must run with this admin_bootstrap_token (tools/schemathesis/run).
BOOTSTRAP = os.environ["SCHEMATHESIS_BOOTSTRAP_TOKEN"]
PASSWORD = "admin password 123"
# The admin in use. Fuzzing may demote or delete it (it is listed by
# GET /admin/users, so inferred links reach it); then a new one is made.
state = {"n": 0}


def _name() -> str:
    return f"zq-root-admin-{state['n']}"


def _role(token: str) -> str:
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["role"]


def admin_token() -> str:
    for _ in range(100):
        r = requests.post(f"{BASE}/auth/login", json={"username": _name(), "password": PASSWORD}, timeout=10)
        if r.status_code == 200 and _role(r.json()["access_token"]) == "admin":
            return r.json()["access_token"]
        if r.status_code in (200, 401):  # demoted, deleted or not made yet
            state["n"] += 1
            requests.post(
                f"{BASE}/auth/register",
                json={"username": _name(), "password": PASSWORD, "role": "admin"},
                headers={"X-Bootstrap-Token": BOOTSTRAP},
                timeout=10,
            )
            continue
        time.sleep(float(r.headers.get("retry-after", "0.2")))
    raise RuntimeError(f"admin login failed: {r.status_code} {r.text}")


@schemathesis.auth(refresh_interval=None)
class AdminAuth:
    def get(self, case, ctx):
        for key, value in (case.headers or {}).items():
            if key.lower() == "authorization":
                # Set by an OpenAPI link (stateful phase): keep it, as the auth.
                return value.split(" ", 1)[-1]
        return admin_token()

    def set(self, case, data, ctx):
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        case.headers["Authorization"] = f"Bearer {data}"


PASSWORD_FIELDS = ("password", "current_password", "new_password")
# The fields the password policy judges: a new password at registration
# and at a password change.
NEW_PASSWORD_FIELDS = {"/auth/register": "password", "/auth/password": "new_password"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "data", "common-passwords.txt"), encoding="utf-8") as f:
    COMMON = {line.lower() for line in f.read().splitlines()}


def weak(password: str, username) -> bool:
    """The password policy (src/domain/password_policy.rs), which JSON
    Schema cannot express: one character repeated, the username in it, or
    on the common list; all in lowercase."""
    lower = password.lower()
    if len(set(lower)) <= 1:
        return True
    if isinstance(username, str) and username.lower() in lower:
        return True
    return lower in COMMON


@schemathesis.hook
def filter_body(ctx, body):
    """Drop bodies the server refuses with a documented 400 that JSON Schema
    cannot express: a password that fits the schema's maxLength (71
    characters) but not the server's real limit (71 UTF-8 bytes), and a new
    password the password policy refuses (weak_password)."""
    if isinstance(body, dict):
        for field in PASSWORD_FIELDS:
            value = body.get(field)
            if isinstance(value, str) and len(value) <= 71 < len(value.encode("utf-8", "surrogatepass")):
                return False
        field = NEW_PASSWORD_FIELDS.get(ctx.operation.path if ctx.operation else None)
        value = body.get(field) if field else None
        if isinstance(value, str) and weak(value, body.get("username")):
            return False
    return True
