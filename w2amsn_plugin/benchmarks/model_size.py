"""What ``w2amsn stats`` prints: the parameters and multiply-adds of every registered network
preset (:data:`w2amsn_plugin.archs.PRESETS`) next to the paper's Table II (T1 x2) with the
relative difference and, where that exceeds :data:`NOTE_THRESHOLD`, the reading from the arch's
own file (``TABLE_II_NOTES``); W²AMSN's S2/W2 width candidates and its upsampler reading
(docs/model-size.md). Counting: :func:`w2amsn_plugin.archs.complexity.count`."""
from __future__ import annotations

from typing import Any

from ..archs.complexity import UPSAMPLE_READING, count
from ..archs.presets import PRESETS, TABLE_II, TABLE_II_NOTES, preset

__all__ = ["NOTE_THRESHOLD", "PAPER_ORDER", "WIDTH_MULTIPLES", "format_tables", "model_rows", "upsample_rows",
           "width_rows"]

#: a row whose parameters or MACs differ from Table II's by more than this gets its reading
NOTE_THRESHOLD = 0.05
#: the paper's order (Table III's columns, then Table II's other rows); other networks follow
PAPER_ORDER = ("NLM", "SRCNN", "VDSR", "RDN", "EDSR", "RCAN", "CSN", "CSFM", "W2AMSN-S", "W2AMSN")
WIDTH_MULTIPLES = (1, 2, 4, 8)


def model_rows(scales: list[int], size: tuple[int, int]) -> list[dict[str, Any]]:
    """One row per preset and scale: params, MACs (executed, nominal), Table II's figures at x2,
    the relative differences and the note when one exceeds :data:`NOTE_THRESHOLD`."""
    rows = []
    order = {name: i for i, name in enumerate(PAPER_ORDER)}
    for name in sorted(PRESETS, key=lambda n: order.get(n, len(order))):
        for scale in scales:
            row: dict[str, Any] = {"model": name, "scale": scale}
            try:
                row.update(count(preset(name, scale), size))
            except ValueError as err:  # e.g. a sub-pixel upsampler: only 2, 3 and 4
                row["error"] = str(err)
            if scale == 2 and name in TABLE_II:
                row["paper_params"], row["paper_macs"] = TABLE_II[name]
                if "error" not in row:
                    row["params_diff"] = row["params"] / row["paper_params"] - 1
                    row["macs_diff"] = row["macs_nominal"] / row["paper_macs"] - 1
                    if max(abs(row["params_diff"]), abs(row["macs_diff"])) > NOTE_THRESHOLD:
                        row["note"] = TABLE_II_NOTES.get(name, "no reading of the difference was found")
            rows.append(row)
    return rows


def width_rows(size: tuple[int, int]) -> list[dict[str, Any]]:
    """W²AMSN and W²AMSN-S for each S2/W2 output width (``mid_feat``, eq. 10) in
    :data:`WIDTH_MULTIPLES` of a, with the per-block parameter cost."""
    rows = []
    for multiple in WIDTH_MULTIPLES:
        row: dict[str, Any] = {"mid_feat_multiple": multiple}
        for name in ("W2AMSN", "W2AMSN-S"):
            opt = preset(name, 2)
            opt["mid_feat"] = multiple * opt["num_feat"]
            row["mid_feat"] = opt["mid_feat"]
            row[name] = count(opt, size)
        blocks = PRESETS["W2AMSN"]["num_block"] - PRESETS["W2AMSN-S"]["num_block"]
        row["per_block_params"] = (row["W2AMSN"]["params"] - row["W2AMSN-S"]["params"]) / blocks
        rows.append(row)
    return rows


def upsample_rows(scales: list[int], size: tuple[int, int]) -> list[dict[str, Any]]:
    """W²AMSN and W²AMSN-S with the upsampler on 8a features (UPSAMPLE_READING) per scale."""
    rows = []
    for name in ("W2AMSN", "W2AMSN-S"):
        for scale in scales:
            row: dict[str, Any] = {"model": name, "scale": scale, **UPSAMPLE_READING}
            row.update(count({**preset(name, scale), **UPSAMPLE_READING}, size))
            if scale == 2:
                row["paper_params"], row["paper_macs"] = TABLE_II[name]
            rows.append(row)
    return rows


def _m(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 or n == 0 else f"{n / 1e3:.2f}K"


def _g(n: float) -> str:
    return f"{n / 1e9:.2f}G"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:+.1%}"


def format_tables(models: list[dict[str, Any]], widths: list[dict[str, Any]], size: tuple[int, int],
                  upsample: list[dict[str, Any]] = ()) -> str:
    """The Markdown tables and notes ``w2amsn stats`` prints."""
    h, w = size
    lines = [f"Model size on a 1x{h}x{w} LR input (MACs = FLOPs/2 from torch.utils.flop_counter);",
             "paper = Table II (T1 x2); diff = ours (nominal MACs) against the paper.", "",
             "| model | scale | params | MACs | MACs (nominal) | paper params | paper MACs "
             "| params diff | MACs diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in models:
        paper = (_m(r["paper_params"]), _g(r["paper_macs"])) if "paper_params" in r else ("", "")
        if "error" in r:
            lines.append(f"| {r['model']} | x{r['scale']} | n/a: {r['error']} | | "
                         f"| {paper[0]} | {paper[1]} | | |")
            continue
        lines.append(f"| {r['model']} | x{r['scale']} | {_m(r['params'])} | {_g(r['macs'])} | "
                     f"{_g(r['macs_nominal'])} | {paper[0]} | {paper[1]} | "
                     f"{_pct(r.get('params_diff'))} | {_pct(r.get('macs_diff'))} |")
    noted = [r for r in models if "note" in r]
    if noted:
        lines += ["", f"Rows more than {NOTE_THRESHOLD:.0%} from Table II:", ""]
        lines += [f"- {r['model']}: {r['note']}" for r in noted]
    per_block = (TABLE_II["W2AMSN"][0] - TABLE_II["W2AMSN-S"][0]) / (
        PRESETS["W2AMSN"]["num_block"] - PRESETS["W2AMSN-S"]["num_block"])
    lines += ["", "S2/W2 output width (mid_feat, eq. 10) vs Table II, x2:", "",
              "| mid_feat | W2AMSN params | W2AMSN MACs (nominal) | W2AMSN-S params "
              "| W2AMSN-S MACs (nominal) | per block (t=20 minus t=8, /12) |",
              "|---|---|---|---|---|---|",
              f"| paper | 11.67M | 167.91G | 5.93M | 85.33G | {per_block / 1e3:.0f}k |"]
    for r in widths:
        big, small = r["W2AMSN"], r["W2AMSN-S"]
        lines.append(f"| {r['mid_feat_multiple']}a = {r['mid_feat']} | {_m(big['params'])} | "
                     f"{_g(big['macs_nominal'])} | {_m(small['params'])} | "
                     f"{_g(small['macs_nominal'])} | {r['per_block_params'] / 1e3:.0f}k |")
    if upsample:
        lines += ["", f"Upsampler on 8a = {UPSAMPLE_READING['upsample_feat']} features "
                  "(upsample_feat; conv1x1 a -> 8a, EDSR-style conv3x3 8a -> p²8a per factor p):", "",
                  "| model | scale | params | MACs (nominal) | paper params | paper MACs |",
                  "|---|---|---|---|---|---|"]
        for r in upsample:
            paper = (_m(r["paper_params"]), _g(r["paper_macs"])) if "paper_params" in r else ("", "")
            lines.append(f"| {r['model']} | x{r['scale']} | {_m(r['params'])} | "
                         f"{_g(r['macs_nominal'])} | {paper[0]} | {paper[1]} |")
    return "\n".join(lines)
