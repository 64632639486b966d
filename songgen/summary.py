"""What a checkpoint holds, as a plain dict (`songgen info --json`) and as text (`songgen info`)."""

from __future__ import annotations

from pathlib import Path

from .progress import describe_loss


def summarise(state: dict, path: str | Path) -> dict:
    """The parts of a loaded checkpoint a person asks about."""
    return {
        "checkpoint": str(path), "songgen_version": state.get("songgen_version"),
        "format_version": state["version"], "model": state["model_config"],
        "training": state.get("train_config"), "vocab_size": len(state["vocab"]),
        "step": state["step"], "epoch": state.get("epoch"),
        "best_val_loss": state.get("best_val_loss"), "corpus": state.get("corpus"),
        "corpus_fingerprint": state.get("fingerprint"),
        "history": state.get("history", []),
    }


def describe(summary: dict) -> str:
    m, t = summary["model"], summary["training"] or {}
    lines = [
        f"checkpoint   {summary['checkpoint']}",
        f"model        {m['layers']}x{m['hidden_size']} LSTM, embedding {m['embed_dim']}, "
        f"dropout {m['dropout']}, vocabulary {summary['vocab_size']}",
        f"corpus       {summary['corpus'] or 'not recorded'} (fingerprint "
        f"{summary['corpus_fingerprint']})",
        f"training     step {summary['step']:,}, epoch {summary['epoch']}, batch "
        f"{t.get('batch_size')} x seq {t.get('seq_len')}, lr {t.get('lr')}",
        f"best val     {describe_loss(summary['best_val_loss'])}",
    ]
    history = summary["history"]
    if history:
        lines.append("history      step     train    val (nats/char)")
        # The first few and the last few evaluations; the middle is summed up in one row.
        shown = history if len(history) <= 9 else history[:3] + [None] + history[-5:]
        for h in shown:
            if h is None:
                lines.append(f"             ... ({len(history) - 8} more)")
                continue
            train_loss = "-" if h.get("train_loss") is None else f"{h['train_loss']:.4f}"
            lines.append(f"             {h['step']:<8} {train_loss:<8} {h['val_loss']:.4f}")
    return "\n".join(lines)
