"""The compare stage's charts: ndcg@10 by dimension, and ndcg@10 by bytes per vector.

matplotlib is imported inside the functions (it takes a second and needs its Agg backend
chosen first); PNG metadata is fixed so identical runs write identical bytes.
"""

from __future__ import annotations

from pathlib import Path

from embedtune.metrics import HEADLINE, key
from embedtune.reporting.tables import PRECISION_LABELS


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on CI runners or servers
    import matplotlib.pyplot as plt

    return plt


def draw_chart(
    table: dict, bm25: float | None, dims: list[int], path: Path, hybrid: dict | None = None
) -> None:
    """ndcg@10 against dimension: base and fine-tuned, their hybrids when given
    (``hybrid[model] = [ndcg per dim]``), BM25 as a flat line; as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for field, label, style in (("base", "base", "o--"), ("finetuned", "fine-tuned", "o-")):
        ax.plot(dims, [table[key(d, HEADLINE)][field] for d in dims], style, label=label)
    for field, label, style in (
        ("base", "base hybrid", "s--"),
        ("finetuned", "fine-tuned hybrid", "s-"),
    ):
        if hybrid:
            ax.plot(dims, hybrid[field], style, label=label)
    if bm25 is not None:
        ax.axhline(bm25, color="grey", linestyle=":", label="BM25")
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("embedding dimension")
    ax.set_ylabel("ndcg@10")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def draw_quantization_chart(rows: list[dict], bm25: float | None, path: Path) -> None:
    """ndcg@10 against bytes per vector (log scale): one point per dimension and precision,
    one line per model and precision through its dimensions, each point labelled with its
    dimension; BM25 as a flat line."""
    plt = _pyplot()
    from matplotlib.ticker import ScalarFormatter

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    colours = dict(zip(PRECISION_LABELS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    for model, style, label in (("base", "--", "base"), ("finetuned", "-", "fine-tuned")):
        for precision, name in PRECISION_LABELS.items():
            pts = sorted(
                (r["bytes"], r[model], r["dim"]) for r in rows if r["precision"] == precision
            )
            if not pts:
                continue
            xs, ys, ds = zip(*pts, strict=True)
            marker = "o" if model == "finetuned" else "x"
            ax.plot(
                xs,
                ys,
                linestyle=style,
                marker=marker,
                color=colours[precision],
                label=f"{label} {name}",
            )
            if model == "finetuned":
                for x, y, d in pts:
                    ax.annotate(
                        str(d), (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7
                    )
    if bm25 is not None:
        ax.axhline(bm25, color="grey", linestyle=":", label="BM25")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 8, 16, ... 1024, not 2^3 ... 2^10
    ax.set_xlabel("bytes per vector (log scale; labels: dimension)")
    ax.set_ylabel("ndcg@10")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    _save(fig, path)
