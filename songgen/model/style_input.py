"""A model's style input: a learnt vector per style (row NEUTRAL: no style asked, the mix)
added to every character's embedding (`CharLSTM.style`). Here a style, or a blend of styles,
is applied to a model: the blend's vector (`vector`), a model that reads every character in
one style (`Styled`, what scoring a style's text runs), and an ordinary model with the vector
folded into its embedding (`unstyled`), which writes in that style at exactly the speed of a
model without styles.

Style ids and blends ({id: weight}, weights summing to 1) come from the names a collection's
songs are labelled with (songgen.text.styles).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .lstm import CharLSTM

NEUTRAL = 0  # the style id of "no style asked": the mix of all


class Styled(torch.nn.Module):
    """A model with styles that reads every character in one style: what scoring a style's
    validation text runs."""

    def __init__(self, model: CharLSTM, style_id: int):
        super().__init__()
        self.model, self.style_id = model, style_id
        self.train(model.training)  # scoring gives the model back in the mode it was in

    def forward(self, x: torch.Tensor, state=None):
        return self.model(x, state, torch.full_like(x, self.style_id))


def vector(model: CharLSTM, blend: dict[int, float] | None) -> torch.Tensor:
    """The style vector of a blend (NEUTRAL's for None): the weighted mean of its styles'."""
    table = model.style.weight
    if not blend:
        return table[NEUTRAL].detach().clone()
    ids = torch.tensor(list(blend), device=table.device)
    weights = torch.tensor(list(blend.values()), device=table.device, dtype=table.dtype)
    return (weights[:, None] * table[ids]).sum(0).detach()


@torch.no_grad()
def unstyled(model: CharLSTM, blend: dict[int, float] | None = None) -> CharLSTM:
    """An ordinary model (without styles) that writes in the style `blend` (None: no style):
    the style vector is folded into every row of the embedding. The model itself when it has
    no styles."""
    if model.config.styles == 0:
        return model
    plain = CharLSTM(replace(model.config, styles=0)).to(model.embed.weight.device)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("style.")}
    state["embed.weight"] = state["embed.weight"] + vector(model, blend)
    plain.load_state_dict(state)
    return plain.train(model.training)
