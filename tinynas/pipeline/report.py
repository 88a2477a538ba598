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
from urllib.parse import quote

from .. import rundir as rd
from ..atomic import write_json, write_png, write_text
from ..plotstyle import FIG_DPI, FIG_WIDTH_IN, PLOT_STYLE
from ..profile import latency_sources, shape_str
from ..space.arch import layer_plan
from ..timebudget import format_duration
from .config import TIMED_STAGES, time_budget_s
from .records import StageRecord, result_value

Block = tuple  # ("h", level, text) | ("p", text) | ("ul", [items]) | ("table", header, rows) | ("img", rel, alt)
#               | ("code", text) | ("links", [(label, path relative to the run folder)])

SUMMARY_KEYS = ("board", "accuracy_float", "accuracy_int8", "arena_bytes", "sram_bytes", "flash_bytes",
                "latency_ms", "macs", "fits", "arch", "files")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    write_png(path, fig, dpi=FIG_DPI)


def latency_figure(prof: Mapping[str, Any], limit_ms: float | None):
    """Per-op latency, cumulative, against the latency limit when there is one."""
    plt = _plt()
    ops = prof["ops"]
    idx = [o["index"] for o in ops]
    ms = [o["latency_ms"] or 0.0 for o in ops]
    cum = [sum(ms[: i + 1]) for i in range(len(ms))]
    with plt.rc_context(PLOT_STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN, 4.2))
        ax.bar(idx, ms, color="#54A24B", label="per-op latency")
        ax2 = ax.twinx()
        ax2.plot(idx, cum, color="#333333", label="cumulative")
        if limit_ms:
            ax2.axhline(limit_ms, color="#E45756", ls="--", label=f"limit {limit_ms} ms")
        ax.set_xlabel("op index (execution order)")
        ax.set_ylabel("ms per op")
        ax2.set_ylabel("cumulative ms")
        ax.set_title(f"latency on {prof['board']}: {prof['latency_ms']:.2f} ms (estimated)")
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left")
        fig.tight_layout()
    return fig


def plot_latency(prof: Mapping[str, Any], path: Path, limit_ms: float | None) -> None:
    _save(latency_figure(prof, limit_ms), path)


# one colour per thing drawn: the SRAM and the flash bars share only the reserve's grey
BUDGET_COLOURS = {"arena (SRAM)": "#4C78A8", "model (flash)": "#F58518", "reserve": "#BAB0AC"}


def _sram_text(prof: Mapping[str, Any]) -> str:
    """The SRAM total's parts, in the words of the firmware header."""
    b = prof.get("sram_breakdown") or {}
    if not b:
        return ""
    return (f"SRAM used = kArenaBytes {b['firmware_arena_bytes']:,} B (arena {b['arena_bytes']:,} B "
            f"{b['arena_how']} + kernel scratch {b['kernel_scratch_bytes']:,} B + margin {b['margin_bytes']:,} B) "
            f"+ the board's reserve {b['reserve_bytes']:,} B = {b['total_bytes']:,} B: the number the firmware "
            "allocates, the number the fit verdict uses.")


def budget_figure(prof: Mapping[str, Any]):
    """SRAM and flash as stacked bars (model part, reserve) against the board's totals."""
    plt = _plt()
    rows = [("SRAM", prof["arena_bytes_firmware"], prof["sram_reserved_bytes"], prof["board_sram_bytes"],
             "arena (SRAM)"),
            ("flash", prof["model_bytes"], prof["flash_reserved_bytes"], prof["board_flash_bytes"],
             "model (flash)")]
    with plt.rc_context(PLOT_STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN, 2.8))
        for i, (_, used, reserve, total, what) in enumerate(rows):
            ax.barh(i, used / total * 100, color=BUDGET_COLOURS[what], label=what)
            ax.barh(i, reserve / total * 100, left=used / total * 100, color=BUDGET_COLOURS["reserve"],
                    label="reserve" if i == 0 else None)
            ax.text(min(99, (used + reserve) / total * 100 + 1), i,
                    f"{(used + reserve) / 1024:,.0f} of {total / 1024:,.0f} KiB", va="center")
        ax.axvline(100, color="#E45756", ls="--")
        ax.set_yticks([0, 1], [r[0] for r in rows])
        ax.set_xlim(0, 130)
        ax.set_xlabel("% of the board")
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig


def plot_budget(prof: Mapping[str, Any], path: Path) -> None:
    _save(budget_figure(prof), path)


def pareto_figure(search: Mapping[str, Any], board):
    """Accuracy (%) against latency for every candidate, SRAM in KiB as colour over the candidates' own range.

    search/pareto.png colours by bytes from 0 to the board's SRAM, where the
    candidates' few KiB of difference all come out the same colour.
    """
    plt = _plt()
    hist = search.get("history", [])
    front = sorted(search.get("front", []), key=lambda c: c["latency_ms"])
    best = search.get("best", {})
    with plt.rc_context(PLOT_STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN, 4.6))
        sc = ax.scatter([h["latency_ms"] for h in hist], [100 * h["accuracy"] for h in hist],
                        c=[h["sram_bytes"] / 1024 for h in hist], cmap="viridis", s=28)
        if front:
            ax.step([c["latency_ms"] for c in front], [100 * c["accuracy"] for c in front], where="post",
                    color="#333333", lw=1, label="Pareto front")
        if best:
            ax.scatter([best["latency_ms"]], [100 * best["accuracy"]], marker="*", s=260, color="#E45756",
                       label="winner", zorder=3)
        bar = fig.colorbar(sc, ax=ax)
        bar.set_label(f"SRAM, KiB (board: {board.sram_bytes / 1024:,.0f} KiB)")
        ax.set_xlabel("latency, ms (cost model)")
        ax.set_ylabel("accuracy on the holdout, %")
        ax.set_title(f"{search.get('strategy', 'search')}: {len(hist)} candidates on {board.id}")
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig


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
        elif b[0] == "links":
            out += [f"- {label}: [{rel}]({quote(rel)})" for label, rel in b[1]] + [""]
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
            body.append(f'<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>')
        elif b[0] == "img":
            p = root / b[1]
            if p.is_file():
                data = base64.b64encode(p.read_bytes()).decode()
                body.append(f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        elif b[0] == "code":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
        elif b[0] == "links":  # relative hrefs: they work wherever the run folder is copied
            body.append("<ul>" + "".join(f'<li>{html.escape(label)}: <a href="{html.escape(quote(rel))}">'
                                         f"<code>{html.escape(rel)}</code></a></li>" for label, rel in b[1])
                        + "</ul>")
    # The column is 960 px (60em at 16 px), as wide as the plots (FIG_WIDTH_IN x FIG_DPI): they are
    # shown 1:1, never scaled down to unreadable text, on any window of at least 1000 px.
    css = ("body{font-family:system-ui,sans-serif;font-size:16px;max-width:60em;margin:2em auto;padding:0 1em;"
           "color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0}"
           "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#f3f3f3}"
           "td:not(:first-child){font-variant-numeric:tabular-nums}.scroll{overflow-x:auto}"
           "figure{margin:1.2em 0}figcaption{color:#555;font-size:.9em}img{max-width:100%;height:auto}"
           "pre{background:#f6f6f6;padding:.8em;overflow-x:auto}code{background:#f3f3f3;padding:0 .2em}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ------------------------------------------------------------------ content


def _read(p: Path) -> dict[str, Any]:
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def _pct(a: float) -> str:
    return f"{100 * a:.2f}%"


def build_summary(out: Path, board, cfg: Mapping, results: Mapping[str, StageRecord],
                  clock_spent_s: float | None = None) -> dict[str, Any]:
    prof = _read(rd.RunDir(out).profile_json)
    exp = _read(rd.RunDir(out).export_json)
    arch = _read(rd.RunDir(out).arch)
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
        "arena_bytes": prof["arena_bytes_firmware"], "sram_bytes": prof["sram_bytes"],
        "sram_breakdown": prof.get("sram_breakdown"), "arena_bytes_device": prof["arena_bytes_device"],
        "flash_bytes": prof["flash_bytes"], "latency_ms": prof["latency_ms"], "macs": prof["macs"],
        "latency_source": latency_sources(prof["ops"]) if prof.get("ops") else None,
        "fits": prof["fits"], "arch": arch, "files": files,
        "arena_bytes_measured_x86": prof.get("arena_bytes_measured"),
        "model_bytes": prof["model_bytes"],
        "accuracy_supernet": result_value(results, "search", "accuracy_supernet"),
        "accuracy_inherited": _read(rd.RunDir(out).finetune_json).get("accuracy_inherited"),
        "stage_wall_s": {k: v.wall_s for k, v in results.items()},
        "time": time_summary(cfg, results, clock_spent_s),
    }


IN_BUDGET = ("space", *TIMED_STAGES, "train")  # "train": `tinynas baseline`'s one timed stage


def time_summary(cfg: Mapping, results: Mapping[str, StageRecord],
                 clock_spent_s: float | None = None) -> dict[str, Any]:
    """Budget vs spend, per stage and in total; export and profile are outside the budget.

    `clock_spent_s` is the run clock's own figure (data loading and the gaps
    between stages included); without it the stages' seconds are summed.
    """
    total = time_budget_s(cfg)
    spent = {k: v.seconds for k, v in results.items()}
    stages = {k: {"share": cfg["time"].get(k) if total is not None else None,
                  "planned_s": results[k].planned_s, "spent_s": spent[k]} for k in results}
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
    prof = _read(rd.RunDir(out).profile_json)
    space = _read(rd.RunDir(out).space_json)
    search = _read(rd.RunDir(out).search_json)
    train = _read(rd.RunDir(out).train_json)
    exp = _read(rd.RunDir(out).export_json)
    verdict = "FITS" if summary["fits"] else "DOES NOT FIT"
    blocks: list[Block] = [
        ("h", 1, f"{title}: {board.name} ({board.id})"),
        ("p", f"Verdict: {verdict}. int8 top-1 {_pct(summary['accuracy_int8'] or 0)} in TFLM "
              f"(float {_pct(summary['accuracy_float'] or 0)}), SRAM {summary['sram_bytes']:,} B "
              f"(kArenaBytes {summary['arena_bytes']:,} B + reserve), "
              f"flash {summary['flash_bytes']:,} B, {summary['latency_ms']:.2f} ms estimated, "
              f"{summary['macs']:,} MACs."),
        ("h", 2, "Board and limits"),
        ("table", ["", "SRAM", "flash"], [
            ["board total", f"{board.sram_bytes:,} B", f"{board.flash_bytes:,} B"],
            ["reserved (runtime, stack, app)", f"{board.sram_reserved_bytes:,} B", f"{board.flash_reserved_bytes:,} B"],
            ["this model", f"{prof['arena_bytes_firmware']:,} B arena (kArenaBytes)", f"{prof['model_bytes']:,} B model"],
            ["total used", f"{prof['sram_bytes']:,} B", f"{prof['flash_bytes']:,} B"]]),
        ("p", _sram_text(prof)),
        ("p", f"Core {board.core} at {board.clock_hz / 1e6:g} MHz, kernels `{board.kernels}`. "
              + ("Latency limit: " + (f"{cfg['run']['latency_ms']} ms." if cfg['run']['latency_ms'] else "none."))),
        ("img", "report_budget.png", "SRAM and flash budget"),
    ]
    blocks += _data_blocks(exp)
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
                   ("img", "report_pareto.png", "accuracy against latency for every candidate, SRAM as colour")]
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
               ("p", f"Arena: the firmware allocates {prof['arena_bytes_firmware']:,} B (kArenaBytes; see "
                     f"Board and limits). The plan on the board itself needs {prof['arena_bytes_device']:,} B "
                     f"(32-bit, {prof['kernels']} scratch {prof['cmsis_scratch_bytes']:,} B); measured "
                     f"{prof.get('arena_bytes_measured') or 0:,} B in TFLM on x86-64, estimated "
                     f"{prof['arena_bytes_estimated']:,} B."),
               layer_table(prof)]
    blocks += _time_blocks(summary)
    blocks += _file_blocks(out, cfg, summary)
    blocks += [("h", 2, "Reproduce"), ("code", command or reproduce_command(cfg))]
    blocks += next_steps(board, cfg, summary)
    return blocks


def _data_blocks(exp: Mapping[str, Any]) -> list[Block]:
    """Which data the accuracy figures are on: source, classes, input and the validation count."""
    rec = exp.get("data") or {}
    if not rec:
        return []
    pre = rec.get("preprocessing", {})
    c, h, w = (pre.get("input_shape") or rec.get("input_shape") or [0, 0, 0])[:3]
    names = rec.get("class_names") or pre.get("class_names") or []
    shown = ", ".join(map(str, names[:20])) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    load = rec.get("load", {})
    split = (f"{load['val_count']:,} images held out" if load.get("val_count")
             else f"a {load.get('val_fraction', 0):.0%} validation split") + f" (split seed {load.get('seed', 0)})"
    return [("h", 2, "Data"),
            ("p", f"`{Path(str(rec.get('data', '?'))).name}`: {len(names) or rec.get('num_classes')} classes "
                  f"({shown}); input {h}x{w}x{c} (HxWxC, {pre.get('color', '?')}). Accuracy below is on "
                  f"{exp.get('verify_samples', 0):,} validation images, {split}, never used for training or "
                  "for choosing the model.")]


def layer_table(prof: Mapping[str, Any]) -> Block:
    """The per-op table of `tinynas profile`, as a report table."""
    rows = [[o["index"], o["type"], shape_str(o["inputs"]), shape_str(o["outputs"]), f"{o['macs']:,}",
             f"{o['weight_bytes']:,}", f"{o['live_bytes']:,}",
             "" if o["latency_ms"] is None else f"{o['latency_ms']:.3f}"] for o in prof["ops"]]
    return ("table", ["#", "op", "input", "output", "MACs", "weights B", "live activations B", "ms"], rows)


def _relative(path: str, out: Path) -> str:
    """`path` relative to the run folder, so links work wherever the folder is copied."""
    try:
        return Path(path).relative_to(out).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _file_blocks(out: Path, cfg: Mapping, summary: Mapping[str, Any]) -> list[Block]:
    target = cfg["export"]["target"]
    project = (f"and a `{target}` firmware project are in `export/`; its README says how to build it"
               if target != "none" else "are in `export/` (no firmware project: `export.target = \"none\"`)")
    return [("h", 2, "Files"),
            ("p", "Paths are relative to this report's folder."),
            ("links", [(k, _relative(v, out)) for k, v in summary["files"].items()]),
            ("p", f"The C sources (`*_model_data.cc/.h`, `*_op_resolver.h`, `*_model_settings.h`) {project}.")]


# How to build and flash each target's project; <...> is for the user to fill in.
FLASH_COMMANDS = {
    "cmake": "cmake -S export -B build -DTFLM_DIR=<tflm-tree> && cmake --build build",
    "arduino": "arduino-cli lib install Chirale_TensorFlowLite\n"
               "arduino-cli compile --library export -b <fqbn> --upload -p <port> export/examples/<sketch>",
    "zephyr": "west build -b <zephyr-board> export && west flash",
    "esp-idf": "cd export && idf.py set-target <chip> && idf.py build flash monitor",
}
ARDUINO_FQBN = {"arduino-nano-33-ble-sense": "arduino:mbed_nano:nano33ble"}
ZEPHYR_BOARDS = {"stm32f746g-disco": "stm32f746g_disco", "nucleo-f446re": "nucleo_f446re",
                 "nrf5340-dk": "nrf5340dk/nrf5340/cpuapp"}
ESP_CHIPS = {"esp32-s3-devkitc": "esp32s3"}


def flash_command(target: str, board, ident: str) -> str | None:
    """The build-and-flash command for the generated project, with this board filled in where known."""
    cmd = FLASH_COMMANDS.get(target)
    if cmd is None:
        return None
    return (cmd.replace("<fqbn>", ARDUINO_FQBN.get(board.id, "<fqbn>"))
               .replace("<zephyr-board>", ZEPHYR_BOARDS.get(board.id, "<zephyr-board>"))
               .replace("<chip>", ESP_CHIPS.get(board.id, "<chip>"))
               .replace("<sketch>", ident))


def _latency_how(summary: Mapping[str, Any]) -> str:
    """Where the run's latency came from, as the end of a sentence."""
    how = summary.get("latency_source") or "estimated by the cycle model"
    if how.startswith("estimated"):
        return how
    if "emulated" in how:
        return (f"from QEMU instruction counts of the real kernels x the core's cycles per instruction "
                f"({how}), not a measurement on this board")
    return f"from this board's latency table ({how})"


def next_steps(board, cfg: Mapping, summary: Mapping[str, Any]) -> list[Block]:
    """What to do with the result: flash it, measure its latency on the board, or spend more to do better."""
    target = cfg["export"]["target"]
    ident = cfg["export"].get("name") or "model"
    flash = flash_command(target, board, ident)
    blocks: list[Block] = [("h", 2, "Next steps"), ("h", 3, "1. Flash it")]
    if flash:
        blocks += [("p", f"Build and flash the `{target}` project in `export/` (`export/README.md` has the "
                         "details and what to fill in between `<` and `>`):"), ("code", flash)]
    else:
        blocks += [("p", "No firmware project was generated; make one for your toolchain:"),
                   ("code", "tinynas export export/model.tflite --target cmake --out firmware")]
    blocks += [("h", 3, "2. Measure latency on the board"),
               ("p", f"The {summary['latency_ms']:.2f} ms is {_latency_how(summary)}. Measure this board's "
                     "latency table once, and every later profile, search and run uses it:"),
               ("code", f"tinynas lut measure --board {board.spec} --out lut_kit\n"
                        "# build and flash lut_kit/firmware, capture its serial output to serial.log, then\n"
                        f"tinynas lut import --board {board.spec} --kit lut_kit serial.log\n"
                        f"tinynas profile export/model.tflite --board {board.spec}"),
               ("h", 3, "3. Spend more budget"),
               ("p", "A longer budget trains the supernet and the winner for longer and scores more candidates. "
                     "Write it to a new folder to keep this result:"),
               ("code", more_budget_command(cfg))]
    return blocks


def more_budget_command(cfg: Mapping[str, Mapping[str, Any]]) -> str:
    """The same run with the next preset's budget (or twice the time), into a new folder."""
    r = cfg["run"]
    budget = time_budget_s(cfg)
    more = ["--time", format_duration(2 * budget).replace(" ", "")] if budget else ["--budget", "medium"]
    cmd = ["tinynas", "run", "--board", r["board"], "--data", r["data"], "--out", f"{r['out']}-more", *more]
    return " ".join(shlex.quote(str(c)) for c in cmd)


def write_report(out: Path, board, cfg: Mapping, results: Mapping[str, StageRecord], clock: Any = None,
                 title: str = "tinynas run", command: str | None = None) -> dict[str, Any]:
    """Write summary.json, report.md and report.html; returns the summary.

    `clock` (the run's RunClock) supplies the budget's true spend when the run had one;
    `title` and `command` let `tinynas baseline` write the same report for its model.
    """
    prof = _read(rd.RunDir(out).profile_json)
    plot_budget(prof, out / "report_budget.png")
    search = _read(rd.RunDir(out).search_json)
    if search.get("history"):
        _save(pareto_figure(search, board), out / "report_pareto.png")
    summary = build_summary(out, board, cfg, results, getattr(clock, "spent_s", None))
    blocks = build_blocks(out, board, cfg, summary, title, command)
    write_text(out / "report.md", to_markdown(blocks))
    write_text(out / "report.html", to_html(blocks, out, f"{title}: {board.id}"))
    summary["files"]["report_md"] = str(out / "report.md")
    summary["files"]["report_html"] = str(out / "report.html")
    write_json(rd.RunDir(out).summary_json, summary)
    return summary
