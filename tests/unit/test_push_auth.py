"""The analytics service's check of the OIDC token Pub/Sub push attaches, against real RS256 tokens.

Google's certificate endpoint is replaced by a fake transport that serves a
locally generated key's certificate (with the Cache-Control header Google
sends) and counts its fetches; everything else is google-auth's own code.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from google.auth import exceptions as google_exceptions

from phase3ops.analytics import push_auth
from phase3ops.analytics.push_auth import AuthUnavailable, PushAuth, Unauthorized

AUDIENCE = "https://analytics.example/"
PUSH_ACCOUNT = "push@proj.iam.gserviceaccount.com"
KEY_ID = "k1"


def new_signer(key_id: str = KEY_ID) -> crypt.RSASigner:
    """A signer of a key Google never published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return crypt.RSASigner.from_string(pem, key_id=key_id)


@pytest.fixture(scope="module")
def signing_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return crypt.RSASigner.from_string(pem, key_id=KEY_ID), certificate.public_bytes(
        serialization.Encoding.PEM
    ).decode()


class FakeResponse:
    def __init__(self, status: int, data: bytes, headers: dict[str, str]):
        self.status, self.data, self.headers = status, data, headers


class FakeCertificateEndpoint:
    """A google.auth.transport.Request that serves one certificate set, counting the fetches."""

    def __init__(
        self, certificates: dict[str, str], cache_control: str = "public, max-age=19845, must-revalidate, no-transform"
    ):
        self.certificates, self.cache_control = certificates, cache_control
        self.fetches = 0
        self.fail: Exception | None = None

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        self.fetches += 1
        if self.fail is not None:
            raise self.fail
        return FakeResponse(200, json.dumps(self.certificates).encode(), {"Cache-Control": self.cache_control})


def make_token(signer, issued_at: float | None = None, **claims) -> str:
    now = int(issued_at if issued_at is not None else time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": PUSH_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        "sub": "1234",
    } | claims
    return jwt.encode(signer, payload).decode()


def google_verifier(endpoint: FakeCertificateEndpoint):
    return push_auth.GoogleIdTokens(request=endpoint)


@pytest.fixture
def endpoint(signing_key, monkeypatch):
    """Google's certificate endpoint, as the default verifier reaches it (a google-auth requests transport)."""
    import google.auth.transport.requests

    fake = FakeCertificateEndpoint({KEY_ID: signing_key[1]})
    monkeypatch.setattr(google.auth.transport.requests, "Request", lambda *args, **kwargs: fake)
    return fake


def test_a_token_issued_a_few_seconds_ahead_of_our_clock_is_accepted(signing_key, endpoint):
    """Google's clock and the instance's differ by a little: a token minted this second may carry
    an `iat` just ahead of ours. Zero leeway refused it with 401 (and Pub/Sub retried, with backoff)."""
    signer, _ = signing_key
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT)
    auth.check(f"Bearer {make_token(signer, issued_at=time.time() + 5)}")
    with pytest.raises(Unauthorized, match="issued in the future"):  # the leeway is a few seconds, not a free pass
        auth.check(f"Bearer {make_token(signer, issued_at=time.time() + 120)}")


def test_two_pushes_fetch_googles_certificates_once(signing_key, endpoint):
    signer, _ = signing_key
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT)
    auth.check(f"Bearer {make_token(signer)}")
    auth.check(f"Bearer {make_token(signer)}")
    assert endpoint.fetches == 1


def test_the_certificates_are_fetched_again_once_their_max_age_has_passed(signing_key, monkeypatch):
    signer, certificate = signing_key
    endpoint = FakeCertificateEndpoint({KEY_ID: certificate}, cache_control="public, max-age=300")
    verifier = google_verifier(endpoint)
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT, verify=verifier)
    clock = [1000.0]
    monkeypatch.setattr(push_auth, "_monotonic", lambda: clock[0])
    auth.check(f"Bearer {make_token(signer)}")
    clock[0] += 299
    auth.check(f"Bearer {make_token(signer)}")
    assert endpoint.fetches == 1
    clock[0] += 2
    auth.check(f"Bearer {make_token(signer)}")
    assert endpoint.fetches == 2


def test_a_key_id_google_does_not_publish_fetches_again_at_most_once_a_minute(signing_key, monkeypatch):
    """Google rotates its keys: an unknown key id refreshes a cached set, but a stream of forged
    key ids must not turn every push into a certificate fetch."""
    signer, certificate = signing_key
    endpoint = FakeCertificateEndpoint({"old-key": certificate})
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT, verify=google_verifier(endpoint))
    clock = [1000.0]
    monkeypatch.setattr(push_auth, "_monotonic", lambda: clock[0])
    with pytest.raises(Unauthorized, match="key Google does not publish"):
        auth.check(f"Bearer {make_token(signer)}")
    clock[0] += 61
    endpoint.certificates = {KEY_ID: certificate}  # rotated
    auth.check(f"Bearer {make_token(signer)}")
    assert endpoint.fetches == 2
    forged = new_signer("forged")
    for _ in range(5):
        with pytest.raises(Unauthorized, match="key Google does not publish"):
            auth.check(f"Bearer {make_token(forged)}")
    assert endpoint.fetches == 2


@pytest.mark.parametrize(
    "failure",
    [google_exceptions.TransportError("connection reset"), google_exceptions.TransportError("timed out")],
)
def test_certificates_that_cannot_be_fetched_are_unavailable_not_unauthorized(signing_key, endpoint, failure):
    """A token we could not check is not a bad token: the service answers 503 and Pub/Sub retries."""
    signer, _ = signing_key
    endpoint.fail = failure
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT)
    with pytest.raises(AuthUnavailable) as caught:
        auth.check(f"Bearer {make_token(signer)}")
    assert not isinstance(caught.value, Unauthorized)


def test_a_certificate_endpoint_answering_an_error_status_is_unavailable(signing_key):
    signer, _ = signing_key

    def answers_503(url, method="GET", **kwargs):
        return FakeResponse(503, b"<html>backend error</html>", {})

    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT, verify=push_auth.GoogleIdTokens(request=answers_503))
    with pytest.raises(push_auth.AuthUnavailable):
        auth.check(f"Bearer {make_token(signer)}")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer ya29.secret-access-token",  # an OAuth access token sent by mistake
        "Bearer secret.secret.secret",  # three segments, none of them base64url JSON
        "Bearer eyJzZWNyZXQiOiAxfQ.eyJzZWNyZXQiOiAxfQ.c2VjcmV0",  # {"secret": 1}: JSON, not a JWT header
        "Bearer " + "secret" * 5000,
    ],
)
def test_a_malformed_bearer_is_unauthorized_without_echoing_any_of_it(endpoint, authorization):
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT)
    with pytest.raises(Unauthorized) as caught:
        auth.check(authorization)
    assert "secret" not in str(caught.value) and "c2VjcmV0" not in str(caught.value)
    assert len(str(caught.value)) < 300


def test_a_forged_or_misdirected_token_is_unauthorized_saying_why_and_quoting_none_of_it(signing_key, endpoint):
    signer, _ = signing_key
    other = new_signer(KEY_ID)  # Google's key id, someone else's key
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT, verify=google_verifier(endpoint))
    cases = {
        "signature": make_token(other, sub="secret-subject"),
        "expired": make_token(signer, issued_at=time.time() - 7200, sub="secret-subject"),
        "audience": make_token(signer, aud="https://secret.example/"),
        "issuer": make_token(signer, iss="https://secret-issuer.example"),
    }
    for kind, token in cases.items():
        with pytest.raises(Unauthorized, match=kind) as caught:
            auth.check(f"Bearer {token}")
        assert "secret" not in str(caught.value) and token[:20] not in str(caught.value)


def test_the_push_service_account_is_pinned(signing_key, endpoint):
    signer, _ = signing_key
    auth = PushAuth(AUDIENCE, PUSH_ACCOUNT, verify=google_verifier(endpoint))
    with pytest.raises(Unauthorized, match="not the push service account"):
        auth.check(f"Bearer {make_token(signer, email='intruder@proj.iam.gserviceaccount.com')}")
    with pytest.raises(Unauthorized, match="not verified"):
        auth.check(f"Bearer {make_token(signer, email_verified=False)}")
    with pytest.raises(Unauthorized, match="missing"):
        auth.check(None)


def test_an_injected_verifier_still_decides(signing_key):
    auth = PushAuth(
        AUDIENCE, PUSH_ACCOUNT, verify=lambda token, audience: {"email": PUSH_ACCOUNT, "email_verified": True}
    )
    auth.check("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln")  # JWT-shaped: what is not is refused before any verifier
    assert not PushAuth(None).enabled
