"""The push check as Cloud Run delivers the request: behind its IAM, with the token's signature removed.

Cloud Run authenticates the caller (internal ingress, `run.invoker` for the
push identity only) and may pass the ID token to the container with its
third segment replaced by `SIGNATURE_REMOVED_BY_GOOGLE` (Cloud Run's
troubleshooting page, "Identity token signature redacted by Google"). Such a
token cannot be verified again in the app; its claims still say who pushed
and for which audience, and those are pinned. Elsewhere (not behind Cloud
Run's IAM, where anyone could write that marker) it is refused.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from phase3ops.analytics.push_auth import REDACTED_SIGNATURE, PushAuth, Unauthorized

AUDIENCE = "https://nba-phase3-analytics-processors-abc-uw.a.run.app/"
PUSH_ACCOUNT = "phase3-analytics-push@nba-props-dev.iam.gserviceaccount.com"


def never_verify(token, audience):
    raise AssertionError("a token whose signature Google removed cannot be verified: it must not be tried")


@pytest.fixture(scope="module")
def signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return crypt.RSASigner.from_string(pem, key_id="k1")


def as_cloud_run_delivers(signer, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "1234",
        "sub": "1234",
        "email": PUSH_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    } | claims
    header, body, _signature = jwt.encode(signer, payload).decode().split(".")
    return f"Bearer {header}.{body}.{REDACTED_SIGNATURE}"


def behind_iam() -> PushAuth:
    return PushAuth(AUDIENCE, PUSH_ACCOUNT, verify=never_verify, behind_cloud_run_iam=True)


def test_the_push_as_cloud_run_passes_it_is_accepted(signer):
    behind_iam().check(as_cloud_run_delivers(signer))


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "https://another-service.a.run.app/"}, "audience"),
        ({"email": "someone-else@nba-props-dev.iam.gserviceaccount.com"}, "push service account"),
        ({"email_verified": False}, "not verified"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"iat": int(time.time()) + 600, "exp": int(time.time()) + 4200}, "future"),
    ],
)
def test_its_claims_are_still_pinned(signer, claims, why):
    with pytest.raises(Unauthorized, match=why):
        behind_iam().check(as_cloud_run_delivers(signer, **claims))


def test_a_redacted_token_is_refused_where_cloud_run_did_not_check_it(signer):
    elsewhere = PushAuth(AUDIENCE, PUSH_ACCOUNT, verify=never_verify)
    with pytest.raises(Unauthorized, match="Cloud Run"):
        elsewhere.check(as_cloud_run_delivers(signer))


def test_the_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PHASE3OPS_PUSH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("PHASE3OPS_PUSH_BEHIND_CLOUD_RUN_IAM", "true")
    assert PushAuth.from_environment().behind_cloud_run_iam
    monkeypatch.setenv("PHASE3OPS_PUSH_BEHIND_CLOUD_RUN_IAM", "")
    assert not PushAuth.from_environment().behind_cloud_run_iam


def test_a_signed_token_is_still_verified_behind_iam(signer):
    """Cloud Run may also pass the token whole: then its signature is checked as before."""
    now = int(time.time())
    token = jwt.encode(signer, {"iss": "https://accounts.google.com", "aud": AUDIENCE, "iat": now, "exp": now + 60})
    seen: list[str] = []

    def verify(candidate: str, audience: str) -> dict:
        seen.append(candidate)
        return {"aud": audience}

    auth = PushAuth(AUDIENCE, None, verify=verify, behind_cloud_run_iam=True)
    auth.check(f"Bearer {token.decode()}")
    assert seen == [token.decode()]


def test_the_deployed_service_checks_pushes_as_cloud_run_passes_them():
    """The stack sets the push check behind Cloud Run's IAM, where only the push identity may invoke."""
    from tests.support.shipped_plans import shipped_plan

    dev = shipped_plan("dev")
    [service] = dev.of_type("gcp:cloudrunv2/service:Service")
    env = {e["name"]: e.get("value") for e in service.inputs["template"]["containers"][0]["envs"]}
    assert env["PHASE3OPS_PUSH_BEHIND_CLOUD_RUN_IAM"] == "true"
    assert service.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    invokers = [
        m
        for m in dev.of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")
        if m.inputs["name"] == service.inputs["name"]
    ]
    assert [m.inputs["role"] for m in invokers] == ["roles/run.invoker"]
    assert invokers[0].inputs["member"] == "serviceAccount:" + env["PHASE3OPS_PUSH_SERVICE_ACCOUNT"]
