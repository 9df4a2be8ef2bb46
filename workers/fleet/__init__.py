"""The worker fleet: registration tokens and runtime JWTs (`tokens`), what the API and the CLI
share (`admin`), and the worker host daemon (`daemon`, `durable fleet worker`)."""

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
