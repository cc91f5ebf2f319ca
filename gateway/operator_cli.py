"""``tradedesk shards list|add|drain``: operator shard commands over the gateway's admin API.

Usage::

    tradedesk shards list  [--gateway URL] [--api-key-file PATH] [--json]
    tradedesk shards add   REGION COMMODITY [--gateway URL] [--api-key-file PATH]
    tradedesk shards drain SHARD_ID [--gateway URL] [--api-key-file PATH]

``--gateway`` defaults to ``http://127.0.0.1:8000`` (``TRADEDESK_GATEWAY``); ``--api-key-file``
to ``<data_dir>/admin.key`` (``TRADEDESK_API_KEY_FILE``), the file ``tradedesk serve`` writes. The
key needs the operator or admin role; it is read from the file and never printed. Exit codes: 0 ok,
1 the API answered an error (its problem detail is printed), 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _default_key_file() -> str:
    env = os.environ.get("TRADEDESK_API_KEY_FILE")
    if env:
        return env
    from actors.settings import get_settings

    return str(Path(get_settings().data_dir) / "admin.key")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tradedesk shards", description="Operator shard commands (admin API).")
    p.add_argument("--gateway", default=os.environ.get("TRADEDESK_GATEWAY", "http://127.0.0.1:8000"))
    p.add_argument("--api-key-file", default=None, help="file holding an operator/admin API key")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list shards with node, seq, book size, queue depth")
    a = sub.add_parser("add", help="add (start) a shard")
    a.add_argument("region", help="ISO 3166-2, e.g. IN-GJ")
    a.add_argument("commodity", help="e.g. cotton")
    d = sub.add_parser("drain", help="drain a shard: stop taking commands, flush and snapshot")
    d.add_argument("shard_id", help="e.g. IN-GJ.cotton")
    return p


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["shard_id", "status", "node_id", "seq", "committed_seq", "book_size", "queue_depth", "draining"]
    data = [[str(r.get(c, "") if r.get(c) is not None else "-")[:16] for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in data)) if data else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in data]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import httpx

    args = _parser().parse_args(list(argv) if argv is not None else None)
    key_file = Path(args.api_key_file or _default_key_file())
    try:
        token = key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(f"cannot read API key file {key_file}: {exc.strerror}", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=args.gateway, headers=headers, timeout=args.timeout) as c:
            if args.cmd == "list":
                r = c.get("/v1/admin/shards")
            elif args.cmd == "add":
                r = c.post("/v1/admin/shards", json={"region": args.region, "commodity": args.commodity})
            else:
                r = c.post(f"/v1/admin/shards/{args.shard_id}/drain")
    except httpx.HTTPError as exc:
        print(f"cannot reach the gateway at {args.gateway}: {type(exc).__name__}", file=sys.stderr)
        return 2
    try:
        body = r.json()
    except ValueError:
        body = {"detail": r.text[:500]}
    if r.status_code >= 400:
        print(
            f"error {r.status_code}: {body.get('title', '')} {body.get('detail', '')}".strip(),
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    elif args.cmd == "list":
        print(_table(body.get("items", [])))
    else:
        print(_table([body]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
