"""What songgen's sampling steps do to the model's choices, character by character, over a
text read as if songgen had written it (the studio's Inside view): the model's own
probabilities, then the song shape's step (songgen/writing/steering/shape.py: which symbols its
rules forbid or force there, and why), then temperature and top-k / top-p, which drop the
unlikely tail: the steps the sampler runs, one by one (songgen/writing/steering/).

The text is read as the sampler reads an opening: after an end-of-song symbol, from the state
where songs begin, in one pass. The rhyme, chorus and word steps (songgen/writing/steering/)
choose among whole candidate lines rather than reshape one character's choices, so they are
not shown here.
"""

from __future__ import annotations

import torch

from ..errors import CorpusError
from ..text.lyrics import join_songs, split_songs
from ..text.reading import normalise
from ..text.vocab import EOS
from ..writing.steering.build import shape_guide
from ..writing.steering.tempered import tempered


@torch.no_grad()
def explain_steps(trained, text: str, *, temperature: float = 0.8, top_k: int = 0,
                  top_p: float = 1.0, shape: str = "auto", length: int = 3000,
                  top: int = 8) -> dict:
    """Per character of `text` (its songs, each followed by the end-of-song symbol): the `top`
    likeliest choices of the model and, for each, its probability as the model gave it, after
    the shape's rules, and in the end (after temperature and top-k/top-p), with what removed
    or forced it. Characters the model never saw are shown, not read."""
    songs = split_songs(normalise(text))
    if not songs:
        raise CorpusError("the text holds no lyrics (it is empty or only whitespace)")
    joined = join_songs(songs)
    index = trained.vocab.index
    known = [c for c in joined if c in index]
    ids = torch.tensor([0] + [index[c] for c in known], device=trained.device)
    state = trained.start_state
    logits, _ = trained.model(ids[:-1][None], state)  # (1, characters known, vocab)
    logits = logits[0].float().cpu()  # (the steps steer on the host)
    out, k = [], 0
    guide = shape_guide(trained, shape, 1, length)
    for c in joined:
        if c not in index:
            out.append({"char": c, "unknown": True})
            continue
        out.append(_one(logits[k], index[c], guide, temperature, top_k, top_p, top,
                        trained.vocab.chars))
        if guide is not None:
            guide.chosen([index[c]], None)
            if c == EOS:  # the next song: a guide of its own
                guide = shape_guide(trained, shape, 1, length)
        k += 1
    return {"chars": ["" if c == EOS else c for c in trained.vocab.chars], "items": out,
            "steps": {"temperature": temperature, "top_k": top_k, "top_p": top_p,
                      "shape": "free" if guide is None else "song"}}


def _one(logits: torch.Tensor, actual: int, guide, temperature: float, top_k: int,
         top_p: float, top: int, chars: list[str]) -> dict:
    """One character's choices through the steps (logits: (vocab,))."""
    model = torch.softmax(logits, -1)
    rules: list[str] = []
    shaped_logits = logits
    if guide is not None:
        shaped_logits = torch.from_numpy(guide.steer(logits[None].numpy())[0])
        rules = guide.explain(0)
    shaped = torch.softmax(shaped_logits, -1)
    # Temperature, top-k, top-p, as the sampler runs them; what each leaves, in turn.
    after = [(None, shaped_logits[None])]
    for step in tempered(temperature, top_k, top_p):
        after.append((step, torch.from_numpy(step.steer(after[-1][1].numpy()))))
    if temperature == 0:
        final = torch.zeros_like(shaped)
        final[shaped_logits.argmax()] = 1.0
    else:
        final = torch.softmax(after[-1][1][0], -1)
    picked = set(model.topk(min(top, len(model))).indices.tolist())
    best = final.topk(min(top, len(final)))
    picked |= set(best.indices[best.values > 0].tolist()) | {actual}
    choices = []
    for i in sorted(picked, key=lambda i: -model[i].item()):
        note = ""
        if shaped[i] == 0 and model[i] > 0:
            note = "removed by the shape"
        elif shaped[i] > model[i] * 1.5 and shaped[i] > 0.01:
            note = "raised by the shape"
        elif final[i] == 0 and shaped[i] > 0:
            note = ("dropped: greedy (temperature 0)" if temperature == 0 else
                    f"dropped by {_dropper(after, i)}")
        choices.append([i, round(model[i].item(), 6), round(shaped[i].item(), 6),
                        round(final[i].item(), 6), note])
    return {"id": actual, "p": round(model[actual].item(), 6),
            "p_final": round(final[actual].item(), 6), "rules": rules, "choices": choices}


def _dropper(after: list, i: int) -> str:
    """The name of the first step whose scores left symbol `i` out (top-p where none did:
    a probability too small to show, as top-p leaves out)."""
    return next((step.name for step, scores in after[1:] if scores[0, i] == -torch.inf),
                "top-p")
