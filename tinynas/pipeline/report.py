"""report.md, a self-contained report.html, and summary.json from the stages' outputs.

Both documents are rendered from one list of blocks, so they never disagree;
the HTML embeds every image as a data URI so it can be mailed or attached to a
ticket as one file.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
from pathlib import Path
from typing import Any, Mapping

from ..atomic import write_json, write_png, write_text
from ..timebudget import format_duration
from .config import TIMED_STAGES, time_budget_s

Block = tuple  # ("h", level, text) | ("p", text) | ("ul", [items]) | ("table", header, rows) | ("img", rel, alt) | ("code", text)

SUMMARY_KEYS = ("board", "accuracy_float", "accuracy_int8", "arena_bytes", "sram_bytes", "flash_bytes",
                "latency_ms", "macs", "fits", "arch", "files")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    write_png(path, fig, dpi=110)


def plot_latency(prof: Mapping[str, Any], path: Path, limit_ms: float | None) -> None:
    """Per-op latency, cumulative, against the latency limit when there is one."""
    plt = _plt()
    ops = prof["ops"]
    ms = [o["latency_ms"] or 0.0 for o in ops]
    cum = [sum(ms[: i + 1]) for i in range(len(ms))]
    fig, ax = plt.subplots(figsize=(max(6, len(ops) * 0.25), 4))
    ax.bar([o["index"] for o in ops], ms, color="#54A24B", label="per-op latency (ms)")
    ax2 = ax.twinx()
    ax2.plot([o["index"] for o in ops], cum, color="#333333", label="cumulative (ms)")
    if limit_ms:
        ax2.axhline(limit_ms, color="#E45756", ls="--", label=f"limit {limit_ms} ms")
    ax.set_xlabel("op index (execution order)")
    ax.set_ylabel("ms per op")
    ax2.set_ylabel("cumulative ms")
    ax.set_title(f"latency on {prof['board']}: {prof['latency_ms']:.2f} ms (estimated)")
    fig.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_budget(prof: Mapping[str, Any], path: Path) -> None:
    """SRAM and flash as stacked bars (model part, reserve) against the board's totals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    rows = [("SRAM", prof["arena_bytes_device"], prof["sram_reserved_bytes"], prof["board_sram_bytes"], "arena"),
            ("flash", prof["model_bytes"], prof["flash_reserved_bytes"], prof["board_flash_bytes"], "model")]
    for i, (label, used, reserve, total, what) in enumerate(rows):
        ax.barh(i, used / total * 100, color="#4C78A8", label=what if i == 0 else "model")
        ax.barh(i, reserve / total * 100, left=used / total * 100, color="#BAB0AC",
                label="reserve" if i == 0 else None)
        ax.text(min(99, (used + reserve) / total * 100 + 1), i,
                f"{(used + reserve):,} / {total:,} B", va="center", fontsize=8)
    ax.axvline(100, color="#E45756", ls="--")
    ax.set_yticks([0, 1], [r[0] for r in rows])
    ax.set_xlim(0, 130)
    ax.set_xlabel("% of the board")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


BLOCK_NAMES = {"mb": "MBConv", "fused": "fused-MBConv", "res": "res conv", "ds": "DS conv"}


def _block_op(b) -> tuple[str, int]:
    """A block's type, kernel and expansion as people name them, and its stride."""
    main = b.convs[0] if b.kind != "mb" else next(c for c in b.convs if c.kind == "dw")
    k = main.kernel
    if b.kind == "res":
        exp = b.convs[0].out_channels // b.convs[-1].out_channels
    elif b.kind == "fused":
        exp = b.convs[0].out_channels // b.convs[0].in_channels
    else:
        exp = main.in_channels // b.convs[0].in_channels if len(b.convs) == 3 else 1
    return f"{BLOCK_NAMES[b.kind]} k{k} e{exp}", main.stride


def arch_rows(arch: Mapping[str, Any]) -> list[list[str]]:
    """The network, one row per block, for people rather than parsers."""
    from ..space.arch import layer_plan

    plan = layer_plan(arch)
    rows = [["stem", "conv 3x3", f"{plan.stem.in_channels}->{plan.stem.out_channels}", str(plan.stem.stride),
             "x".join(map(str, plan.stem.out_hw)), ""]]
    for b in plan.blocks:
        op, stride = _block_op(b)
        skip = "yes" if b.residual else ("1x1 conv" if b.shortcut is not None else "")
        rows.append([b.name, op, f"{b.convs[0].in_channels}->{b.convs[-1].out_channels}",
                     str(stride), "x".join(map(str, b.convs[-1].out_hw)), skip])
    rows.append(["head", "avg pool + FC", f"{plan.feature_channels}->{plan.num_classes}", "", "1x1", ""])
    return rows


# ------------------------------------------------------------------ rendering


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if b[0] == "h":
            out += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            out += [b[1], ""]
        elif b[0] == "ul":
            out += [f"- {x}" for x in b[1]] + [""]
        elif b[0] == "table":
            out += ["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
            out += ["| " + " | ".join(map(str, r)) + " |" for r in b[2]] + [""]
        elif b[0] == "img":
            out += [f"![{b[2]}]({b[1]})", ""]
        elif b[0] == "code":
            out += ["```", b[1], "```", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Backticks to <code>, everything else escaped."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], root: Path, title: str) -> str:
    body: list[str] = []
    for b in blocks:
        if b[0] == "h":
            body.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
        elif b[0] == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif b[0] == "img":
            p = root / b[1]
            if p.is_file():
                data = base64.b64encode(p.read_bytes()).decode()
                body.append(f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        elif b[0] == "code":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
    css = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;"
           "text-align:left}th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:.8em;"
           "overflow-x:auto}code{background:#f3f3f3;padding:0 .2em}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ------------------------------------------------------------------ content


def _read(p: Path) -> dict[str, Any]:
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def _pct(a: float) -> str:
    return f"{100 * a:.2f}%"


def build_summary(out: Path, board, cfg: Mapping, results: Mapping[str, Any],
                  clock_spent_s: float | None = None) -> dict[str, Any]:
    prof = _read(out / "profile" / "profile.json")
    exp = _read(out / "export" / "export.json")
    arch = _read(out / "finetune" / "arch.json")
    files = {
        "tflite": "export/model.tflite", "onnx": "export/model.onnx", "export": "export/export.json",
        "c_sources": "export/model", "firmware": "export", "profile": "profile/profile.json",
        "report_md": "report.md", "report_html": "report.html", "run_toml": "run.toml",
        "space": "space/space.json", "supernet": "supernet/supernet.pt", "search": "search/search.json",
        "weights": "finetune/model.pt", "arch": "finetune/arch.json",
    }
    files = {k: str(out / v) for k, v in files.items() if (out / v).exists()}
    return {
        "board": board.id,
        "accuracy_float": exp.get("accuracy_float"),
        "accuracy_int8": exp.get("accuracy_int8"),
        "arena_bytes": prof["arena_bytes_device"], "sram_bytes": prof["sram_bytes"],
        "flash_bytes": prof["flash_bytes"], "latency_ms": prof["latency_ms"], "macs": prof["macs"],
        "fits": prof["fits"], "arch": arch, "files": files,
        "arena_bytes_measured_x86": prof.get("arena_bytes_measured"),
        "model_bytes": prof["model_bytes"],
        "accuracy_supernet": results.get("search", {}).get("result", {}).get("accuracy_supernet"),
        "accuracy_inherited": _read(out / "finetune" / "finetune.json").get("accuracy_inherited"),
        "stage_wall_s": {k: v.get("wall_s") for k, v in results.items()},
        "time": time_summary(cfg, results, clock_spent_s),
    }


IN_BUDGET = ("space", *TIMED_STAGES, "train")  # "train": `tinynas baseline`'s one timed stage


def time_summary(cfg: Mapping, results: Mapping[str, Any], clock_spent_s: float | None = None) -> dict[str, Any]:
    """Budget vs spend, per stage and in total; export and profile are outside the budget.

    `clock_spent_s` is the run clock's own figure (data loading and the gaps
    between stages included); without it the stages' seconds are summed.
    """
    total = time_budget_s(cfg)
    spent = {k: v.get("spent_s", v.get("wall_s")) for k, v in results.items()}
    stages = {k: {"share": cfg["time"].get(k) if total is not None else None,
                  "planned_s": results[k].get("planned_s"), "spent_s": spent[k]} for k in results}
    in_budget = round(sum(spent[k] or 0 for k in IN_BUDGET if k in spent), 2)
    out = {"mode": "counts" if total is None else "time", "budget": cfg["run"]["time"] or None,
           "budget_s": total, "shares": dict(cfg["time"]) if total is not None else None,
           "spent_s": clock_spent_s if clock_spent_s is not None else in_budget,
           "outside_budget_s": round(sum(spent[k] or 0 for k in spent if k not in IN_BUDGET), 2),
           "stages": stages}
    if total is not None:
        out["overshoot"] = round(out["spent_s"] / total - 1.0, 4)
    return out


def _time_blocks(summary: Mapping[str, Any]) -> list[Block]:
    """The time section: the sizing rule in force, then planned vs spent per stage."""
    tm = summary.get("time") or {}
    if tm.get("mode") != "time":
        return [("h", 2, "Time"),
                ("p", "Sized by counts (no time budget): `train.epochs`, `search.candidates` and "
                      "`finetune.epochs` set the work. Pass `--time 10m` (or leave the counts unset) to size "
                      "the run by a clock instead.")]

    def fmt(x: float | None) -> str:
        return "" if x is None else f"{x:.1f} s"

    rows = [[k, "" if v["share"] is None else f"{v['share']:g}", fmt(v["planned_s"]), fmt(v["spent_s"])]
            for k, v in tm["stages"].items() if k in IN_BUDGET]
    rows.append(["total (budget)", "1", fmt(tm["budget_s"]), fmt(tm["spent_s"])])
    rows += [[k, "outside", "", fmt(v["spent_s"])] for k, v in tm["stages"].items() if k not in IN_BUDGET]
    return [("h", 2, "Time"),
            ("p", f"Sized by a time budget of {format_duration(tm['budget_s'])} (`run.time = \"{tm['budget']}\"`) "
                  "up to the fine-tuned model: each training stage measured its throughput on a few probe steps, "
                  "planned its steps to end at its share's deadline (the cosine schedule spans exactly those "
                  "steps) and stops at a hard deadline; the search planned its candidates from the seconds per "
                  "candidate. `train.epochs`, `search.candidates` and `finetune.epochs` were ignored. Each stage "
                  "gets its share of what is left when it starts, so unused time rolls over. Export and profile "
                  "run outside the budget."),
            ("table", ["stage", "share", "planned", "spent"], rows)]


def _selection_text(search: Mapping[str, Any]) -> str:
    """How the winner was picked among the finalists (search.json `selection`)."""
    sel = search.get("selection")
    if not sel:
        return ""
    if sel["prefer"] == "accuracy":
        return "The most accurate finalist was kept (prefer = accuracy)."
    return (f"{sel['tied']} finalist(s) scored within {sel['tie_z']:g} standard error "
            f"({_pct(sel['standard_error'])} on {sel['n_images']:,} {sel.get('split', '')} images) of the best; "
            "the cheapest of them (latency, then SRAM, then flash) was kept. "
            "Set search.prefer = \"accuracy\" for the most accurate whatever it costs.")


def reproduce_command(cfg: Mapping[str, Mapping[str, Any]]) -> str:
    r = cfg["run"]
    cmd = ["tinynas", "run", "--board", r["board"], "--data", r["data"], "--out", r["out"],
           "--budget", r["budget"], "--config", str(Path(r["out"]) / "run.toml")]
    return " ".join(shlex.quote(str(c)) for c in cmd)


def build_blocks(out: Path, board, cfg: Mapping, summary: Mapping[str, Any], title: str = "tinynas run",
                 command: str | None = None) -> list[Block]:
    prof = _read(out / "profile" / "profile.json")
    space = _read(out / "space" / "space.json")
    search = _read(out / "search" / "search.json")
    train = _read(out / "supernet" / "train.json")
    exp = _read(out / "export" / "export.json")
    verdict = "FITS" if summary["fits"] else "DOES NOT FIT"
    blocks: list[Block] = [
        ("h", 1, f"{title}: {board.name} ({board.id})"),
        ("p", f"Verdict: {verdict}. int8 top-1 {_pct(summary['accuracy_int8'] or 0)} in TFLM "
              f"(float {_pct(summary['accuracy_float'] or 0)}), arena {summary['arena_bytes']:,} B, "
              f"flash {summary['flash_bytes']:,} B, {summary['latency_ms']:.2f} ms estimated, "
              f"{summary['macs']:,} MACs."),
        ("h", 2, "Board and limits"),
        ("table", ["", "SRAM", "flash"], [
            ["board total", f"{board.sram_bytes:,} B", f"{board.flash_bytes:,} B"],
            ["reserved (runtime, stack, app)", f"{board.sram_reserved_bytes:,} B", f"{board.flash_reserved_bytes:,} B"],
            ["this model", f"{prof['arena_bytes_device']:,} B arena", f"{prof['model_bytes']:,} B model"],
            ["total used", f"{prof['sram_bytes']:,} B", f"{prof['flash_bytes']:,} B"]]),
        ("p", f"Core {board.core} at {board.clock_hz / 1e6:g} MHz, kernels `{board.kernels}`. "
              + ("Latency limit: " + (f"{cfg['run']['latency_ms']} ms." if cfg['run']['latency_ms'] else "none."))),
        ("img", "report_budget.png", "SRAM and flash budget"),
    ]
    if space:
        ch = space.get("chosen", {})
        blocks += [("h", 2, "Chosen search space"),
                   ("p", f"Width multiplier {ch.get('width_mult')} at resolution {ch.get('resolution')}, "
                         f"chosen among {len(space.get('table', []))} spaces by the mean MACs of the subnets "
                         f"that fit ({space.get('samples')} samples each)."),
                   ("img", "space/flops_cdf.png", "MACs CDF of fitting subnets per space")]
    if train:
        hist = train.get("history", train if isinstance(train, list) else [])
        last = hist[-1] if hist else {}
        tp = train.get("time") if isinstance(train, dict) else None
        plan = (f"{tp['steps']} of {tp['planned_steps']} steps planned from {tp['images_per_s']:.0f} img/s for "
                f"{format_duration(tp['budget_s'])} ({len(hist)} epochs, the last may be partial); ") if tp else ""
        blocks += [("h", 2, "Supernet training"),
                   ("p", f"{plan}{len(hist)} epochs of single-path one-shot training; last epoch: "
                         + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in last.items() if isinstance(v, (int, float))) + "."),
                   ("img", "supernet/train_curve.png", "supernet training curves")]
    if search:
        blocks += [("h", 2, "Search"),
                   ("p", f"Strategy {search.get('strategy')}, {len(search.get('history', []))} candidates "
                         f"evaluated with inherited weights after BN recalibration; winner "
                         f"{_pct(search.get('best', {}).get('accuracy', 0))}. {_selection_text(search)}"),
                   ("img", "search/pareto.png", "accuracy against latency, SRAM as colour")]
    if summary.get("arch"):
        blocks += [("h", 2, "Winning architecture" if search else "Architecture"),
                   ("table", ["block", "op", "channels", "stride", "output", "residual"], arch_rows(summary["arch"]))]
    blocks += [("h", 2, "Accuracy"),
               ("table", ["", "top-1"], ([
                   ["supernet, inherited weights (search, on the holdout it chose on)",
                    _pct(summary.get("accuracy_supernet") or 0)],
                   ["inherited weights, BN recalibrated (validation)", _pct(summary.get("accuracy_inherited") or 0)],
               ] if search else []) + [
                   ["trained float (PyTorch)" if not search else "fine-tuned float (PyTorch)",
                    _pct(summary["accuracy_float"] or 0)],
                   ["int8 (TFLM)", _pct(summary["accuracy_int8"] or 0)]]),
               ("p", f"TFLM and LiteRT (reference kernels) agree on "
                     f"{_pct(exp.get('tflm_litert_identical_fraction', 0) or 0)} of validation inputs "
                     f"(max difference {exp.get('max_lsb_diff', '?')} LSB).")]
    blocks += [("h", 2, "Memory and latency per layer"),
               ("img", "profile/memory.png", "per-op SRAM against the board limit"),
               ("img", "profile/latency.png", "per-op latency"),
               ("p", f"Arena: {prof['arena_bytes_device']:,} B on the board (32-bit, {prof['kernels']} scratch "
                     f"{prof['cmsis_scratch_bytes']:,} B); measured {prof.get('arena_bytes_measured') or 0:,} B "
                     f"in TFLM on x86-64, estimated {prof['arena_bytes_estimated']:,} B. "
                     f"Full table: `profile/profile.txt`.")]
    blocks += _time_blocks(summary)
    blocks += [("h", 2, "Files"),
               ("ul", [f"`{k}`: `{v}`" for k, v in summary["files"].items()]),
               ("p", "The C sources (`*_model_data.cc/.h`, `*_op_resolver.h`, `*_model_settings.h`) and a "
                     f"`{cfg['export']['target']}` project skeleton are in `export/`; its README says how to "
                     "build it. For other targets: `tinynas export export/model.tflite --target "
                     "arduino|zephyr|esp-idf|cmake --out DIR`."),
               ("h", 2, "Reproduce"),
               ("code", command or reproduce_command(cfg))]
    return blocks


def write_report(out: Path, board, cfg: Mapping, results: Mapping[str, Any], clock: Any = None,
                 title: str = "tinynas run", command: str | None = None) -> dict[str, Any]:
    """Write summary.json, report.md and report.html; returns the summary.

    `clock` (the run's RunClock) supplies the budget's true spend when the run had one;
    `title` and `command` let `tinynas baseline` write the same report for its model.
    """
    prof = _read(out / "profile" / "profile.json")
    plot_budget(prof, out / "report_budget.png")
    summary = build_summary(out, board, cfg, results, getattr(clock, "spent_s", None))
    blocks = build_blocks(out, board, cfg, summary, title, command)
    write_text(out / "report.md", to_markdown(blocks))
    write_text(out / "report.html", to_html(blocks, out, f"{title}: {board.id}"))
    summary["files"]["report_md"] = str(out / "report.md")
    summary["files"]["report_html"] = str(out / "report.html")
    write_json(out / "summary.json", summary)
    return summary
