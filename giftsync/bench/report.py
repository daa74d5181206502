"""The benchmark's table and its targets (figures for the report, never test assertions)."""
from __future__ import annotations

from typing import Any

POLL_SECONDS = 5.0     # GIFTSYNC_REDEMPTION_POLL_SECONDS default


def _n(x: Any, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def rows(results: list[dict]) -> list[list[str]]:
    out = []
    for r in results:
        red, bulk, req, d = r["redemptions"], r["bulk_request"], r["requests"]["by_service"], r["daemon"]
        per_red = "/".join(_n(req[s]["per_redemption"], "{:.2f}") for s in ("airtable", "shopify", "klaviyo"))
        per_card = "/".join(_n(req[s]["per_card"], "{:.2f}") for s in ("airtable", "shopify", "klaviyo"))
        out.append([
            r["mode"], str(r["bulk"]),
            f"{red['finished']}/{red['submitted']}",
            *((">=" if red["unfinished"] else "") + _n(red[k]) for k in ("p50", "p95", "max")),
            _n(bulk["seconds"], "{:.0f}") if bulk else "-",
            _n(bulk["cards_per_second"], "{:.2f}") if bulk else "-",
            f"{r.get('orders_done_by_mark', '?')}/{r.get('orders_placed', '?')}",
            f"{r.get('orders_done', '?')}/{r.get('orders_placed', '?')}",
            per_red, per_card if bulk else "-",
            str(r["429s"]),
            _n(d["peak_rss_mb"], "{:.0f}"), _n(d["cpu_percent"], "{:.1f}"), _n(d["idle_cpu_percent"], "{:.2f}"),
        ])
    return out


HEADER = ["mode", "B", "redeemed", "p50 s", "p95 s", "max s", "bulk s", "cards/s", "orders @mark", "orders end",
          "req/redemption AT/SH/KL", "req/card AT/SH/KL", "429s", "RSS MB", "CPU %", "idle CPU %"]


def table(report: dict) -> str:
    body = rows(report["results"])
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(HEADER)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in body]
    m = report.get("machine_before", {})
    out.append("")
    out.append(f"{'quick run' if report.get('quick') else 'full run'} {report.get('started', '')}, "
               f"{m.get('cpus')} CPUs, load average before {m.get('loadavg')} after "
               f"{report.get('machine_after', {}).get('loadavg')}")
    out.append("targets:")
    for t in report.get("targets", []):
        out.append(f"  [{'met' if t['met'] else 'MISSED' if t['met'] is False else 'n/a'}] {t['target']}: {t['figure']}")
    return "\n".join(out)


def targets(results: list[dict]) -> list[dict]:
    own = [r for r in results if r["mode"] == "giftsync"]
    base = {r["bulk"]: r for r in results if r["mode"] == "baseline"}
    out: list[dict] = []

    def add(target: str, met: bool | None, figure: str) -> None:
        out.append({"target": target, "met": met, "figure": figure})

    if own:
        p95 = {r["bulk"]: r["redemptions"]["p95"] for r in own}
        unfinished = sum(r["redemptions"]["unfinished"] for r in own)
        ok = all(v is not None and v <= POLL_SECONDS + 2 for v in p95.values()) and unfinished == 0
        add(f"p95 redemption latency <= {POLL_SECONDS + 2:g} s at every B",
            ok, ", ".join(f"B={b}: {_n(v)} s" for b, v in p95.items()) + f"; unfinished {unfinished}")
        for b in sorted(p95):
            if b in base and p95[b] and base[b]["redemptions"]["p95"]:
                ratio = base[b]["redemptions"]["p95"] / p95[b]
                add(f">= 10x lower p95 than the baseline at B={b}" + ("" if b == 500 else " (target is at B=500)"),
                    ratio >= 10 if b == 500 else None, f"{ratio:.1f}x")
        loaded = [r for r in own if r["requests"]["by_service"]["airtable"]["per_redemption"] is not None]
        worst = max((r["requests"]["by_service"]["airtable"]["per_redemption"] for r in loaded), default=None)
        add("<= 1.0 Airtable request per redemption", worst is not None and worst <= 1.0, f"worst {_n(worst, '{:.2f}')}")
        n429 = sum(r["429s"] for r in own)
        add("zero 429s", n429 == 0, str(n429))
        for r in own:
            bulk = r["bulk_request"]
            if bulk and bulk["seconds"]:
                ratio = bulk["seconds"] / bulk["bucket_bound_seconds"]
                add(f"bulk B={r['bulk']} within 1.25x of 10 cards/s", ratio <= 1.25,
                    f"{bulk['seconds']:.0f} s = {ratio:.2f}x of {bulk['bucket_bound_seconds']:.0f} s")
            elif bulk:
                add(f"bulk B={r['bulk']} within 1.25x of 10 cards/s", False, f"not finished ({bulk['status']})")
        rss = max((r["daemon"]["peak_rss_mb"] for r in own), default=None)
        add("daemon peak RSS <= 120 MB", rss is not None and rss <= 120, f"{_n(rss, '{:.0f}')} MB")
        idle = [r["daemon"]["idle_cpu_percent"] for r in own if r["daemon"]["idle_cpu_percent"] is not None]
        add("idle CPU < 1 %", (max(idle) < 1.0) if idle else None,         # None: not measured (--idle 0)
            ", ".join(f"{x:.2f} %" for x in idle) or "not measured")
    return out
