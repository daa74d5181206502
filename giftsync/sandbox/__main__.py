"""python -m giftsync.sandbox: start one twin, or send faults to a running one.

  python -m giftsync.sandbox serve {airtable|shopify|klaviyo} [--port N] [--seed FILE]
         [--state FILE] [--fault-seed N] [--option key=value ...]
      prints one line "ready <base url>" once it listens; stops on SIGTERM / Ctrl-C.

  python -m giftsync.sandbox fault URL --kind {status,hang,reset,latency} [--route R]
         [--when {before,after}] [--status N] [--count N] [--probability P]
         [--delay S] [--jitter S]
  python -m giftsync.sandbox fault URL --clear
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.request

from . import TWINS, start_twin


def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"option {text!r} is not key=value")
    key, value = text.split("=", 1)
    try:
        parsed: object = json.loads(value)
    except ValueError:
        parsed = value
    return key.replace("-", "_"), parsed


def _serve(args: argparse.Namespace) -> int:
    options = dict(args.option or [])
    server = start_twin(args.twin, port=args.port, seed=args.seed, state=args.state,
                        fault_seed=args.fault_seed, **options)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"ready {server.url}", flush=True)
    stop.wait()
    server.stop()
    return 0


def _fault(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/__sandbox/faults"
    if args.clear:
        req = urllib.request.Request(url, method="DELETE")
    else:
        rule = {"kind": args.kind, "route": args.route, "when": args.when, "probability": args.probability,
                "count": args.count, "status": args.status, "delay": args.delay, "jitter": args.jitter}
        body = {"rules": [rule]}
        if args.fault_seed is not None:
            body["seed"] = args.fault_seed
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        print(resp.read().decode())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m giftsync.sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start one twin")
    serve.add_argument("twin", choices=sorted(TWINS))
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    serve.add_argument("--seed", help="JSON seed file")
    serve.add_argument("--state", help="file that keeps the twin's data across restarts")
    serve.add_argument("--fault-seed", type=int, help="seed of the fault generator")
    serve.add_argument("--option", action="append", type=_parse_option, metavar="KEY=VALUE",
                       help="twin option, e.g. rate_limit=false (value parsed as JSON when it can be)")
    serve.set_defaults(func=_serve)
    fault = sub.add_parser("fault", help="add a fault rule to a running twin")
    fault.add_argument("url", help="the twin's base URL")
    fault.add_argument("--clear", action="store_true", help="remove every rule")
    fault.add_argument("--kind", choices=["status", "hang", "reset", "latency"], default="status")
    fault.add_argument("--route", default="*", help="route key (e.g. giftCardDebit, records.create); * = any")
    fault.add_argument("--when", choices=["before", "after"], default="before",
                       help="after = the call takes effect, then the client sees the fault")
    fault.add_argument("--status", type=int, default=503)
    fault.add_argument("--count", type=int, default=None, help="fire at most N times")
    fault.add_argument("--probability", type=float, default=1.0)
    fault.add_argument("--delay", type=float, default=0.0)
    fault.add_argument("--jitter", type=float, default=0.0)
    fault.add_argument("--fault-seed", type=int)
    fault.set_defaults(func=_fault)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
