# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""One rule for what is a secret, shared by every module that reports what a server said.

A key is secret when its LAST word is a secret word: ``api_key``, ``HF_TOKEN``,
``clientSecret``, ``ssl_keyfile_password`` are; ``max_total_tokens``, ``tokenizer_path``,
``speculative_token_map`` and ``ssl_keyfile`` (a path) are not. Values that are known secrets
(an API key the module was given) are masked wherever they appear in text, and in an argument
list the value of a secret-looking flag is masked (``--api-key X``, ``--hf-token=X``).
"""

from __future__ import annotations

import re

MASK = "********"

SECRET_WORDS = frozenset((
    "key", "keys", "apikey", "token", "secret", "secrets", "password", "passwd", "pwd", "passphrase",
    "credential", "credentials", "authorization", "auth", "cookie", "bearer",
))


def is_secret_name(name):
    """True for names like api_key, HF_TOKEN, clientSecret, db-password (not max_total_tokens)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]
    return bool(words) and words[-1] in SECRET_WORDS


URL_WORDS = frozenset(("url", "urls", "uri", "uris", "proxy", "proxies"))


def _words(name):
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]


def may_carry_credentials(name):
    """True for options that hold a URL, which may carry ``user:token@`` (index_url,
    extra_index_urls, https_proxy), not for no_proxy (host names)."""
    words = _words(name)
    return bool(words) and words[-1] in URL_WORDS and words[0] != "no"


USERINFO = re.compile(r"//([^/@\s]+)@")


def url_credentials(url):
    """The URL and its ``user:password`` part when it carries credentials
    (``https://user:token@host/simple``), and the password alone (a traceback may quote it
    alone, "nonnumeric port: 'token@host'"); [] for a URL without."""
    found = []
    for userinfo in USERINFO.findall(url or ""):
        found.extend([url, userinfo])
        password = userinfo.partition(":")[2]
        if len(password) >= 6:
            found.append(password)
    return found


def mask_text(text, secrets=()):
    """text with every known secret value replaced by MASK (longest first, so a secret that
    contains another is masked whole)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _holds_text(value):
    if isinstance(value, str):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return any(_holds_text(item) for item in value)
    return False


def _secret_flag(arg):
    """The flag's name when ``arg`` is a command-line flag (``--api-key``, ``-token=x``), else None."""
    if not isinstance(arg, str) or not arg.startswith("-") or arg.lstrip("-") == "":
        return None
    return arg.lstrip("-").split("=", 1)[0]


def scrub_args(args, secrets=()):
    """Copy of an argument list with the value of every secret-looking flag masked: the item after
    ``--api-key`` and the part after ``=`` in ``--api-key=X``; known secrets masked in every item."""
    out = []
    mask_next = False
    for arg in args:
        name = _secret_flag(arg)
        if mask_next and name is None:
            out.append(MASK)
            mask_next = False
            continue
        mask_next = False
        if name is not None and is_secret_name(name):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=" + MASK)
            else:
                out.append(arg)
                mask_next = True
            continue
        out.append(scrub(arg, secrets))
    return out


def scrub(value, secrets=()):
    """Copy of value with secret-named entries that hold text masked, secret-looking flags'
    values masked in argument lists, and known secret values masked in every string, at any depth."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if is_secret_name(key) and _holds_text(item):
                out[key] = MASK
            else:
                out[key] = scrub(item, secrets)
        return out
    if isinstance(value, (list, tuple)):
        if any(_secret_flag(item) for item in value):
            return scrub_args(value, secrets)
        return [scrub(item, secrets) for item in value]
    if isinstance(value, str):
        return mask_text(value, secrets)
    return value


def secret_values(value):
    """The texts that scrub() masks in value (the values of secret-named entries and of
    secret-looking flags), so they can be masked wherever else they appear (an error message
    that quotes an argument list)."""
    found = []

    def walk(original, scrubbed):
        if original == scrubbed:
            return
        if isinstance(original, str):
            if scrubbed == MASK:
                found.append(original)
            elif "=" in original and scrubbed.endswith("=" + MASK):
                found.append(original.split("=", 1)[1])
        elif isinstance(original, dict):
            for key in original:
                walk(original[key], scrubbed.get(key) if isinstance(scrubbed, dict) else MASK)
        elif isinstance(original, (list, tuple)):
            for item, masked in zip(original, scrubbed if isinstance(scrubbed, (list, tuple)) else []):
                walk(item, masked)
            if not isinstance(scrubbed, (list, tuple)):
                for item in original:
                    walk(item, MASK)

    walk(value, scrub(value))
    return [text for text in found if text]
