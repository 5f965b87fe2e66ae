"""REST: the kit against raw requests over TLS, reused and fresh, in one run.

Against the sandbox HTTPS API (a test CA, TCP_NODELAY on the server socket):
  raw requests, new session per request   requests.get with a new Session each time
  raw requests, one session               one requests.Session, GET per request
  kit                                     trainlab.connect(url).get(path)
  kit, cached                             get(path, ttl=60) after the first call

Target (issue 5): the kit within 1.2x of raw reused requests.
Run: python benchmarks/bench_rest.py [--repeat 300]
"""

from __future__ import annotations

import argparse
import sys

import requests
from _timing import blocks_ms

import trainlab
from trainlab.sandbox.api import APIServer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    with APIServer() as api:
        token = api.issue_token()
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{api.url}/time"
        raw = requests.Session()
        kit = trainlab.connect(api.url, ca_bundle=api.ca_file, token=token)

        def fresh() -> object:
            with requests.Session() as session:
                return session.get(url, headers=headers, verify=api.ca_file).json()

        figures = blocks_ms(
            {
                "raw requests, new session per request": fresh,
                "raw requests, one session": lambda: raw.get(
                    url, headers=headers, verify=api.ca_file
                ).json(),
                "kit": lambda: kit.get("/time").json(),
                "kit, cached": lambda: kit.get("/time", ttl=60).json(),
            },
            args.repeat,
            block=50,
            warmup=10,
        )
        connections = api.connections
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:8.3f} ms")
    ratio = figures["kit"] / figures["raw requests, one session"]
    print(f"\nkit / raw reused: {ratio:.2f} (target <= 1.2)")
    fresh_ratio = figures["raw requests, new session per request"] / figures["kit"]
    print(f"fresh / kit: {fresh_ratio:.1f}x; TCP connections accepted: {connections}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
