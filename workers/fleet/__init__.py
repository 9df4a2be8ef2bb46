"""The worker fleet's credentials (issue 7, in progress): registration tokens and runtime JWTs.
Nothing serves these yet; the registration API, pools and routes come next."""

from .tokens import (
    REGISTRATION_PREFIX,
    RUNTIME_ALGORITHM,
    IssuedToken,
    RuntimeClaims,
    RuntimeKeys,
    TokenRejected,
    issue_registration_token,
    registration_token_hash,
)

__all__ = [
    "REGISTRATION_PREFIX",
    "RUNTIME_ALGORITHM",
    "IssuedToken",
    "RuntimeClaims",
    "RuntimeKeys",
    "TokenRejected",
    "issue_registration_token",
    "registration_token_hash",
]
