"""Secrets of every supported kind are replaced before anything is stored or logged."""

from __future__ import annotations

import pytest

from memproxy_cli.memory.redact import redact, redact_obj

# Built by concatenation so no complete fake key sits in the source as one literal.
OPENAI = "sk-" + "abcDEF1234567890abcDEF1234567890"
OPENAI_PROJ = "sk-proj-" + "Ab3_dE-f" * 6
ANTHROPIC = "sk-ant-api03-" + "x" * 40
GOOGLE = "AIza" + "SyA1234567890abcdefghijklmnopqrstuv"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKl"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
SUPERMEMORY = "sm_" + "Ab12Cd34Ef56Gh78Ij90KlMn"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SESSION_ID = "ASIA" + "Y34FZKBOKMUTVV7A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (OPENAI, "openai"),
        (OPENAI_PROJ, "openai"),
        (ANTHROPIC, "anthropic"),
        (GOOGLE, "google"),
        (GITHUB, "github"),
        (GITHUB_PAT, "github"),
        (SLACK, "slack"),
        (STRIPE, "stripe"),
        (HF, "huggingface"),
        (SUPERMEMORY, "supermemory"),
        (AWS_ID, "aws_access_key_id"),
        (AWS_SESSION_ID, "aws_access_key_id"),
    ],
)
def test_provider_tokens_are_redacted_with_their_kind(secret: str, kind: str) -> None:
    text = f"my key is {secret} please keep it"
    out = redact(text)
    assert secret not in out
    assert out == f"my key is [REDACTED:{kind}] please keep it"


def test_aws_secret_assignment_keeps_the_name() -> None:
    out = redact(f"aws_secret_access_key = {AWS_SECRET}\nregion = eu-west-1")
    assert AWS_SECRET not in out
    assert out.startswith("aws_secret_access_key = [REDACTED:aws_secret]")
    assert "region = eu-west-1" in out


def test_bearer_token() -> None:
    out = redact("curl -H 'Authorization: Bearer abc.DEF-123_456~xyz' https://x")
    assert "abc.DEF-123_456~xyz" not in out
    assert "Bearer [REDACTED:bearer]" in out


def test_pem_private_key_block() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\nabcdEFGH==\n"
        "-----END RSA PRIVATE KEY-----"
    )
    out = redact(f"here:\n{pem}\nthanks")
    assert "MIIEowIBAAKCAQEA1234" not in out
    assert out == "here:\n[REDACTED:private_key]\nthanks"


def test_password_in_url_keeps_user_and_host() -> None:
    out = redact("DATABASE_URL=postgresql://app:s3cr3t-pw@db.internal:5432/main")
    assert "s3cr3t-pw" not in out
    assert "postgresql://app:[REDACTED]@db.internal:5432/main" in out


@pytest.mark.parametrize(
    "text",
    [
        "password=hunter22",
        'api_key: "abc123xyz"',
        "DB_PASSWORD = 'correct horse'",
        "client_secret=zzz999",
    ],
)
def test_assignments(text: str) -> None:
    out = redact(text)
    assert "[REDACTED:secret]" in out
    for value in ("hunter22", "abc123xyz", "correct", "zzz999"):
        assert value not in out


def test_plain_text_and_near_misses_are_untouched() -> None:
    text = "We use PostgreSQL 16; the task-runner is sk-short and the bearer of news is here."
    assert redact(text) == text
    assert redact("") == ""


def test_redaction_is_idempotent() -> None:
    once = redact(f"key {OPENAI} and Bearer {OPENAI} and password={OPENAI}")
    assert redact(once) == once
    assert OPENAI not in once


def test_redact_obj_walks_dicts_and_lists_and_hides_secret_keys() -> None:
    obj = {
        "headers": {
            "Authorization": "Bearer zzzzzzzzzzzz",
            "x-api-key": "whatever",
            "accept": "*/*",
        },
        "messages": [{"content": f"use {ANTHROPIC}"}, 3, None],
    }
    out = redact_obj(obj)
    assert out["headers"]["Authorization"] == "[REDACTED]"
    assert out["headers"]["x-api-key"] == "[REDACTED]"
    assert out["headers"]["accept"] == "*/*"
    assert out["messages"][0]["content"] == "use [REDACTED:anthropic]"
    assert out["messages"][1:] == [3, None]
    assert obj["headers"]["x-api-key"] == "whatever"  # the input is not modified
