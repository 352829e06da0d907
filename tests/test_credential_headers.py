"""The credential-header check: visible ASCII (0x20-0x7e) passes, any other character refuses."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from memproxy_cli.gateway.credential_headers import CREDENTIAL_HEADERS, invalid_credential_header


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_every_code_point_outside_visible_ascii_is_refused() -> None:
    for code in range(0x110000):
        value = f"sk-{chr(code)}x"
        refused = invalid_credential_header(_headers(("X-Api-Key", value)))
        assert refused == (None if 0x20 <= code <= 0x7E else "x-api-key"), hex(code)


def test_each_credential_header_and_each_of_its_values_is_checked() -> None:
    for name in CREDENTIAL_HEADERS:
        assert invalid_credential_header(_headers((name, "Bearer ok"))) is None
        bad = _headers((name, "Bearer ok"), (name.upper(), "caf\udce9"))
        assert invalid_credential_header(bad) == name
    assert invalid_credential_header(_headers(("x-other", "\x00"))) is None
    assert invalid_credential_header(_headers(("authorization", ""))) is None
