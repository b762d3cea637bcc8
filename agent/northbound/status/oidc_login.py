"""The page's sign-in through the `[security.oidc]` identity provider (authorization code flow + PKCE).

GET /status/login/oidc: a fresh random binding value in a short-lived cookie, then off to the IdP.
GET /status/login/oidc/callback: the IdP's answer (agent.security.authcode checks it); on success the same
session a local login makes, the role mapped as for a local user; on failure the login page, saying why.

The binding cookie is SameSite=Lax, unlike the session cookie (Strict): the callback is a top-level
navigation coming from the IdP's site, which carries Lax cookies but not Strict ones. For the same reason
the callback does not redirect to /status (a redirect chain that began on another site would not carry the
new Strict session cookie either): it answers a small page that moves on to /status from our own origin.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Response, redirect, render_template, request, url_for

from ...security.authcode import AuthorizationCodeLogin, SignInRefused, SignInUnavailable
from .auth import client_address, page_role, start_session
from .config import OIDC_CALLBACK_PATH, StatusSection

log = logging.getLogger("agent.northbound.status")

START_PATH = OIDC_CALLBACK_PATH.removesuffix("/callback")
BINDING_COOKIE = "msec_oidc"


@dataclass(frozen=True, slots=True)
class OidcSignIn:
    flow: AuthorizationCodeLogin
    label: str  # the login page offers "Sign in with <label>" (the issuer)


def add_oidc_routes(
    bp: Blueprint,
    sign_in: OidcSignIn,
    settings: StatusSection,
    login_page: Callable[[str | None, int], Response],
    *,
    device: str,
    session_seconds: float,
) -> None:
    def binding_cookie(response: Response, value: str, max_age: int) -> None:
        response.set_cookie(
            BINDING_COOKIE,
            value,
            max_age=max_age,
            path=START_PATH,
            secure=settings.cookie_secure,
            httponly=True,
            samesite="Lax",
        )

    @bp.get(START_PATH)
    def oidc_start() -> Response:
        binding = secrets.token_urlsafe(32)
        try:
            target = sign_in.flow.start(binding)
        except SignInRefused as error:
            return login_page(str(error), 503)
        response = redirect(target, code=303)
        binding_cookie(response, binding, int(sign_in.flow.ttl))
        return response

    @bp.get(OIDC_CALLBACK_PATH)
    def oidc_callback() -> Response:
        try:
            identity = sign_in.flow.finish(request.args, request.cookies.get(BINDING_COOKIE))
        except SignInRefused as error:
            response = login_page(str(error), 503 if isinstance(error, SignInUnavailable) else 401)
        else:
            start_session(identity.name, page_role(identity.roles), session_seconds)
            log.info("status page login via OIDC", extra={"user": identity.name, "client": client_address()})
            response = Response(
                render_template("signed_in.html", device=device, target=url_for("status.page"))
            )
        binding_cookie(response, "", 0)  # spent either way
        return response
