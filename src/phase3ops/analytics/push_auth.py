"""Verify the OIDC token Pub/Sub attaches to push requests.

Cloud Run with internal ingress and IAM already rejects callers without the
invoker role; this second check pins the audience and the push service
account, so a token minted for another service or by another identity is
refused. Off unless PHASE3OPS_PUSH_AUDIENCE is set (locally, the emulator
pushes without a token).

Behind Cloud Run's IAM the token may reach the container with its signature
replaced by `SIGNATURE_REMOVED_BY_GOOGLE` (Cloud Run's troubleshooting page,
"Identity token signature redacted by Google"): Cloud Run verified it and
took the signature away so it cannot be replayed. Such a token cannot be
verified again; with PHASE3OPS_PUSH_BEHIND_CLOUD_RUN_IAM=true (set by the
stack, whose service grants `run.invoker` to the push identity only) its
claims are pinned as a signed token's are: issuer, audience, expiry, the
push account. Authentication is then Cloud Run IAM's; this check makes sure
the caller IAM let in is the push subscription of this service. Without the
setting a redacted token is refused: anyone can write the marker.

Two outcomes besides success, answered differently by the service:

- `Unauthorized` (401): the token is bad and will stay bad. Its message says
  what kind of problem it was and never repeats the token or any part of it
  (google-auth's own messages quote token bytes, and an OAuth access token
  sent by mistake is a credential that must not reach a log line).
- `AuthUnavailable` (503): the token could not be checked, because Google's
  certificates could not be fetched. Pub/Sub retries the push later.

Google's certificates are kept between pushes as long as the certificate
endpoint's Cache-Control max-age allows (hours), so a push costs no fetch.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from phase3ops.input_bounds import capped, quoted

GOOGLE_OAUTH2_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
# The token is minted on Google's clock and checked on this instance's: a token delivered the
# second it was minted can carry an `iat` a second or two ahead of ours. Ten seconds absorbs
# NTP-synced clocks' differences and stays negligible against the token's one-hour lifetime.
CLOCK_SKEW_SECONDS = 10
# When the endpoint sends no max-age (Google always has), keep the certificates briefly rather
# than fetch on every push; never trust a max-age beyond a day (Google rotates keys about daily).
DEFAULT_CACHE_SECONDS = 300
MAX_CACHE_SECONDS = 86_400
# An unknown key id refreshes the certificates (a rotation we have not seen), but at most this
# often: otherwise forged key ids would turn every push into a fetch from Google.
MIN_REFETCH_SECONDS = 60
FETCH_TIMEOUT_SECONDS = 10
MAX_TOKEN_CHARS = 16_384  # Google's ID tokens are about 1 KB
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")
REDACTED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"

_monotonic = time.monotonic  # replaced in tests


class Unauthorized(Exception):
    """The push's token is missing or invalid: answer 401."""


class AuthUnavailable(Exception):
    """The token could not be checked (Google's certificates could not be fetched): answer 503, Pub/Sub retries."""


@dataclass(frozen=True)
class PushAuth:
    audience: str | None
    service_account: str | None = None
    verify: Callable[[str, str], Mapping] | None = None  # tests inject one; by default GoogleIdTokens, one per PushAuth
    behind_cloud_run_iam: bool = False  # Cloud Run's IAM checked the token: a redacted signature is expected

    def __post_init__(self) -> None:
        if self.verify is None:
            # One verifier per service instance: its certificate cache lives as long as the app does.
            object.__setattr__(self, "verify", GoogleIdTokens())

    @classmethod
    def from_environment(cls) -> PushAuth:
        return cls(
            os.environ.get("PHASE3OPS_PUSH_AUDIENCE") or None,
            os.environ.get("PHASE3OPS_PUSH_SERVICE_ACCOUNT") or None,
            behind_cloud_run_iam=os.environ.get("PHASE3OPS_PUSH_BEHIND_CLOUD_RUN_IAM", "").lower() == "true",
        )

    @property
    def enabled(self) -> bool:
        return self.audience is not None

    def check(self, authorization: str | None) -> None:
        if not self.enabled:
            return
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("missing 'Authorization: Bearer <OIDC token>' header")
        token = authorization.removeprefix("Bearer ").strip()
        _check_shape(token)
        # enabled means an audience; __post_init__ always sets a verifier.
        assert self.audience is not None and self.verify is not None
        if token.rsplit(".", 1)[-1] == REDACTED_SIGNATURE:
            if not self.behind_cloud_run_iam:
                raise Unauthorized(
                    "invalid OIDC token: its signature was removed, as Cloud Run does once its IAM has checked it,"
                    " but this service is not deployed behind Cloud Run's IAM (PHASE3OPS_PUSH_BEHIND_CLOUD_RUN_IAM)"
                )
            claims = redacted_token_claims(token, self.audience)
        else:
            claims = self._verified_claims(token)
        if self.service_account and claims.get("email") != self.service_account:
            raise Unauthorized(f"token is for {quoted(claims.get('email'), 100)}, not the push service account")
        if self.service_account and not claims.get("email_verified", False):
            raise Unauthorized("token email is not verified")

    def _verified_claims(self, token: str) -> Mapping[str, Any]:
        assert self.audience is not None and self.verify is not None
        try:
            return self.verify(token, self.audience)
        except (Unauthorized, AuthUnavailable):
            raise
        except Exception as exc:
            if _is_transport_error(exc):
                raise AuthUnavailable(f"could not check the OIDC token: {type(exc).__name__}") from None
            # Only the exception's type: an injected verifier's message may quote the token.
            raise Unauthorized(f"invalid OIDC token ({type(exc).__name__})") from None


def redacted_token_claims(
    token: str, audience: str, clock_skew_seconds: int = CLOCK_SKEW_SECONDS, now: float | None = None
) -> Mapping[str, Any]:
    """The claims of a token Cloud Run verified and redacted, held to what a signed one must say."""
    from google.auth import jwt

    try:
        claims = jwt.decode(token, verify=False)
    except Exception:
        raise Unauthorized("invalid OIDC token: its payload is not a JSON object") from None
    if not isinstance(claims, Mapping):
        raise Unauthorized("invalid OIDC token: its payload is not a JSON object")
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthorized("invalid OIDC token: wrong issuer (not accounts.google.com)")
    if claims.get("aud") != audience:
        raise Unauthorized(f"invalid OIDC token: for another audience, not {audience}")
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, (int, float)) or not isinstance(expires, (int, float)):
        raise Unauthorized("invalid OIDC token: it lacks its iat or exp claim")
    current = time.time() if now is None else now
    if issued > current + clock_skew_seconds:
        raise Unauthorized(f"invalid OIDC token: issued in the future (more than {clock_skew_seconds} s ahead)")
    if expires < current - clock_skew_seconds:
        raise Unauthorized("invalid OIDC token: expired")
    return claims


def _check_shape(token: str) -> None:
    """Refuse what is not a JWT before any parser sees it, saying why with none of its characters."""
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized(
            f"invalid OIDC token: the bearer is {len(token)} characters, an ID token at most {MAX_TOKEN_CHARS}"
        )
    segments = token.split(".")
    if len(segments) != 3:
        raise Unauthorized(
            f"invalid OIDC token: not a JWT (an ID token has 3 dot-separated segments, this bearer {len(segments)});"
            " an OAuth access token sent instead of an ID token?"
        )
    if not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise Unauthorized("invalid OIDC token: not a JWT (a segment is not base64url)")


def _is_transport_error(exc: BaseException) -> bool:
    from google.auth import exceptions as google_exceptions

    return isinstance(exc, (google_exceptions.TransportError, google_exceptions.TimeoutError))


class GoogleIdTokens:
    """Verifies ID tokens Google signed, with Google's certificates kept between calls.

    google-auth's `verify_oauth2_token` fetches the certificates on every call
    (its documented cure is a CacheControl session, not a dependency here), so
    this fetches them itself, honouring Cache-Control max-age, and checks each
    token with google-auth's `jwt.decode` and the issuer check
    `verify_oauth2_token` makes."""

    def __init__(
        self,
        request: Callable[..., Any] | None = None,
        certs_url: str = GOOGLE_OAUTH2_CERTS_URL,
        clock_skew_seconds: int = CLOCK_SKEW_SECONDS,
    ):
        self._request = request  # a google.auth.transport.Request; built on first use
        self.certs_url = certs_url
        self.clock_skew_seconds = clock_skew_seconds
        self._lock = threading.Lock()
        self._certificates: dict[str, str] = {}
        self._fresh_until = -math.inf
        self._fetched_at = -math.inf

    def __call__(self, token: str, audience: str) -> Mapping[str, Any]:
        from google.auth import jwt

        try:
            header = jwt.decode_header(token)
        except Exception:
            raise Unauthorized("invalid OIDC token: its header is not base64url-encoded JSON") from None
        key_id = header.get("kid") if isinstance(header, Mapping) else None
        if not isinstance(header, Mapping) or header.get("alg") != "RS256":
            raise Unauthorized("invalid OIDC token: not signed with RS256, as Google signs ID tokens")
        if not isinstance(key_id, str) or not key_id:
            raise Unauthorized("invalid OIDC token: its header names no key id")
        certificate = self._certificate(key_id)
        if certificate is None:
            raise Unauthorized("invalid OIDC token: signed with a key Google does not publish")
        try:
            claims = jwt.decode(
                token, certs={key_id: certificate}, audience=audience, clock_skew_in_seconds=self.clock_skew_seconds
            )
        except Exception as exc:
            raise Unauthorized(f"invalid OIDC token: {self._problem(exc, audience)}") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("invalid OIDC token: wrong issuer (not accounts.google.com)")
        return claims

    def _problem(self, exc: Exception, audience: str) -> str:
        """What kind of problem google-auth found, in our words: its messages quote the token."""
        message = str(exc)
        kinds = (
            ("Could not verify token signature", "its signature does not verify against Google's key"),
            (
                "Token used too early",
                f"issued in the future (more than {self.clock_skew_seconds} s ahead of this instance's clock)",
            ),
            ("Token expired", "expired"),
            ("Token has wrong audience", f"for another audience, not {audience}"),
            ("Token does not contain required claim", "it lacks its iat or exp claim"),
            ("Can't parse segment", "its payload is not JSON"),
            ("Payload segment should be", "its payload is not a JSON object"),
        )
        return next(
            (kind for prefix, kind in kinds if message.startswith(prefix)), f"it does not verify ({type(exc).__name__})"
        )

    def _certificate(self, key_id: str) -> str | None:
        with self._lock:  # one fetch at a time: concurrent pushes wait for it rather than each fetching
            now = _monotonic()
            unknown_key = key_id not in self._certificates and now - self._fetched_at >= MIN_REFETCH_SECONDS
            if now >= self._fresh_until or unknown_key:
                self._fetch(now)
            return self._certificates.get(key_id)

    def _fetch(self, now: float) -> None:
        if self._request is None:
            from google.auth.transport import requests as google_requests

            self._request = google_requests.Request()
        try:
            response = self._request(self.certs_url, method="GET", timeout=FETCH_TIMEOUT_SECONDS)
        except (
            Exception
        ) as exc:  # google-auth wraps every transport failure in TransportError; none is a verdict on the token
            raise AuthUnavailable(
                f"could not fetch Google's certificates: {type(exc).__name__}: {capped(str(exc), 200)}"
            ) from None
        if response.status != 200:
            raise AuthUnavailable(f"could not fetch Google's certificates: {self.certs_url} answered {response.status}")
        try:
            certificates = json.loads(response.data)
        except (ValueError, RecursionError, TypeError):
            certificates = None
        if (
            not isinstance(certificates, dict)
            or not certificates
            or not all(isinstance(v, str) for v in certificates.values())
        ):
            raise AuthUnavailable(
                f"could not fetch Google's certificates: {self.certs_url} answered no {{key id: certificate}} map"
            )
        self._certificates = certificates
        self._fetched_at = now
        self._fresh_until = now + _freshness(getattr(response, "headers", None) or {})


def _freshness(headers: Mapping[str, str]) -> float:
    """Seconds the response may be used, from its Cache-Control max-age less its Age (RFC 9111)."""
    fields = {
        name.lower(): value for name, value in headers.items() if isinstance(name, str) and isinstance(value, str)
    }
    directives = [d.strip().lower() for d in fields.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0
    max_age = next((int(d[8:]) for d in directives if d.startswith("max-age=") and d[8:].isdigit()), None)
    if max_age is None:
        return DEFAULT_CACHE_SECONDS
    age = int(fields["age"]) if fields.get("age", "").isdigit() else 0
    return max(0, min(max_age - age, MAX_CACHE_SECONDS))
