"""How much `classify` costs per upstream response (prints numbers; asserts nothing)."""

from __future__ import annotations

import functools
import timeit

from multidict import CIMultiDict

from memproxy_cli.upstream.cloudflare import classify

CF = {"server": "cloudflare", "cf-ray": "8f0c0ffee0000000-AMS"}
CASES = {
    "200 json (CIMultiDict)": (200, CIMultiDict({**CF, "content-type": "application/json"}), None),
    "200 json (plain dict)": (200, {**CF, "Content-Type": "application/json"}, None),
    "429 json retry-after": (429, CIMultiDict({**CF, "retry-after": "7"}), b"{}"),
    "403 html block page": (
        403,
        CIMultiDict({**CF, "content-type": "text/html"}),
        b"<html>" + b"x" * 8000 + b'<span class="cf-error-code">1020</span></html>',
    ),
}


def main() -> None:
    for name, (status, headers, body) in CASES.items():
        runs = 20_000
        call = functools.partial(classify, status, headers, body)
        seconds = min(timeit.repeat(call, number=runs, repeat=5))
        print(f"{name:28s} {seconds / runs * 1e6:8.2f} us per call")


if __name__ == "__main__":
    main()
