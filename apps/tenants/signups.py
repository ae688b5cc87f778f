"""Sign-up by email confirmation, so the sign-up page never tells anyone whether an email
already has an account: every valid request gets the same answer and an email. A new
address gets a one-time link that creates the tenant; a known one gets a notice instead
(log in or reset the password), and nothing is created.

Pending sign-ups wait in Redis (shared by every replica) under the SHA-256 of their
token, for AKA_SIGNUP_LINK_SECONDS; the password is kept only as its Django hash.
"""

import hashlib
import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.template.loader import render_to_string

from apps.core.redis import sync_client

from . import services

PREFIX = "aka:signup:"
CLAIM_SECONDS = 60  # outlives any confirmation; frees the email if its process died


class LinkInvalid(Exception):
    """The link is unknown, expired, already used, or its email registered meanwhile."""


def _key(token: str) -> str:
    return PREFIX + hashlib.sha256(token.encode()).hexdigest()


def signup_request(*, email: str, password: str, organisation: str, link_for) -> None:
    """Emails the confirmation link (`link_for(token)` makes it absolute), or the notice
    when the email already has an account."""
    email = email.lower()
    if get_user_model().objects.filter(username=email).exists():
        body = render_to_string("tenants/signup_notice_email.txt", {"email": email})
        send_mail("Someone tried to sign up with your email", body, None, [email])
        return
    token = secrets.token_urlsafe(32)
    pending = {"email": email, "organisation": organisation, "password_hash": make_password(password)}
    sync_client().set(_key(token), json.dumps(pending), ex=settings.AKA_SIGNUP_LINK_SECONDS)
    body = render_to_string("tenants/signup_confirm_email.txt", {"email": email, "link": link_for(token),
                                                                 "organisation": organisation})
    send_mail("Confirm your AkaRouter account", body, None, [email])


def signup_link_valid(*, token: str) -> bool:
    return bool(sync_client().exists(_key(token)))


def signup_confirm(*, token: str):
    """Creates the tenant, owner and first key of a pending sign-up, once.
    Returns (tenant, user, raw key).

    The link is spent only after the tenant is committed, so a failed confirmation leaves
    it usable. While one confirmation runs it claims the email: a second one of this link,
    or of another link for the same email, is refused rather than colliding on the user."""
    redis = sync_client()
    stored = redis.get(_key(token))
    if stored is None:
        raise LinkInvalid
    pending = json.loads(stored)
    claim = f"{PREFIX}claim:{pending['email']}"
    if not redis.set(claim, 1, nx=True, ex=CLAIM_SECONDS):
        raise LinkInvalid
    try:
        # A confirmation that finished before the claim made this user.
        if get_user_model().objects.filter(username=pending["email"]).exists():
            raise LinkInvalid
        made = services.signup(email=pending["email"], password_hash=pending["password_hash"],
                               organisation=pending["organisation"])
        redis.delete(_key(token))
        return made
    finally:
        redis.delete(claim)
