"""Verify the OIDC token Pub/Sub attaches to push requests.

Cloud Run with internal ingress and IAM already rejects callers without the
invoker role; this second check pins the audience and the push service
account, so a token minted for another service or by another identity is
refused. Off unless PHASE3OPS_PUSH_AUDIENCE is set (locally, the emulator
pushes without a token).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping


class Unauthorized(Exception):
    pass


@dataclass(frozen=True)
class PushAuth:
    audience: str | None
    service_account: str | None = None
    verify: Callable[[str, str], Mapping] | None = None

    @classmethod
    def from_environment(cls) -> "PushAuth":
        return cls(os.environ.get("PHASE3OPS_PUSH_AUDIENCE") or None, os.environ.get("PHASE3OPS_PUSH_SERVICE_ACCOUNT") or None)

    @property
    def enabled(self) -> bool:
        return self.audience is not None

    def check(self, authorization: str | None) -> None:
        if not self.enabled:
            return
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("missing 'Authorization: Bearer <OIDC token>' header")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            claims = (self.verify or _google_verify)(token, self.audience)
        except Exception as exc:  # google-auth raises ValueError and transport errors alike
            raise Unauthorized(f"invalid OIDC token: {exc}") from None
        if self.service_account and claims.get("email") != self.service_account:
            raise Unauthorized(f"token is for {claims.get('email')!r}, not the push service account")
        if self.service_account and not claims.get("email_verified", False):
            raise Unauthorized("token email is not verified")


def _google_verify(token: str, audience: str) -> Mapping:
    from google.auth.transport import requests
    from google.oauth2 import id_token

    return id_token.verify_oauth2_token(token, requests.Request(), audience=audience)
