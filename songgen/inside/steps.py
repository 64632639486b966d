"""What songgen's sampling steps do to the model's choices, character by character, over a
text read as if songgen had written it (the studio's Inside view): the model's own
probabilities, then the song shape's rules (songgen/songcraft/shape.py: which symbols it forbids or
forces there, and why), then temperature and top-k / top-p, which drop the unlikely tail.

The text is read as the sampler reads an opening: after an end-of-song symbol, from the state
where songs begin, in one pass. The rhyme, chorus and word steps (songgen/writing/craft.py) choose
among whole candidate lines rather than reshape one character's choices, so they are not
shown here.
"""

from __future__ import annotations

import torch

from ..errors import CorpusError
from ..text.lyrics import join_songs, split_songs
from ..text.reading import normalise
from ..text.vocab import EOS
# What a shape rule does, by the bit of the guide's row that asks for it.
from ..writing.drawing import filter_logits
from ..writing.sampling import _guide
from ..writing.shape_guide import (_FORBID_EOS, _FORBID_HASH, _FORBID_NL, _FORCED, _LINE_END,
                                   _WORD_END)

_RULES = ((_FORBID_NL, "no line break here (a title's first letters, a line's start after a "
                       "blank line, or the song is being brought to its end)"),
          (_FORBID_EOS, "the song may not end yet (too short, or not at a line's end)"),
          (_LINE_END, "the line is far past its length: it must end now"),
          (_WORD_END, "the line is at its length: it ends at the end of this word"),
          (_FORBID_HASH, "'#' starts a title line only"))
_FORCES = ("a titled song starts with '#'", "a title's '#' is followed by a space",
           "a line break: a title or stanza at its limit, or the blank line after the title")


def shape_rules(row: int) -> list[str]:
    """The rules a row of the shape guide's table applies, in words."""
    if row >= _FORCED:
        return [_FORCES[row - _FORCED]]
    return [text for bit, text in _RULES if row & bit]


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
    logits = logits[0].float()
    out, k = [], 0
    guide = _guide(trained, shape, 1, length, "")
    for c in joined:
        if c not in index:
            out.append({"char": c, "unknown": True})
            continue
        out.append(_one(logits[k], index[c], guide, temperature, top_k, top_p, top,
                        trained.vocab.chars))
        if guide is not None:
            guide.update([index[c]])
            if c == EOS:  # the next song: a guide of its own
                guide = _guide(trained, shape, 1, length, "")
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
        rules = shape_rules(guide._row(guide.songs[0]))
        shaped_logits = guide.steer(logits[None])[0]
    shaped = torch.softmax(shaped_logits, -1)
    if temperature == 0:
        final = torch.zeros_like(shaped)
        final[shaped_logits.argmax()] = 1.0
        cut_k = cut = shaped_logits
    else:
        scaled = shaped_logits / temperature
        cut_k = filter_logits(scaled[None], top_k, 1.0)[0]
        cut = filter_logits(scaled[None], top_k, top_p)[0]
        final = torch.softmax(cut, -1)
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
                    "dropped by top-k" if cut_k[i] == -torch.inf else "dropped by top-p")
        choices.append([i, round(model[i].item(), 6), round(shaped[i].item(), 6),
                        round(final[i].item(), 6), note])
    return {"id": actual, "p": round(model[actual].item(), 6),
            "p_final": round(final[actual].item(), 6), "rules": rules, "choices": choices}
