"""The CUDA graph step's output buffers, checked on the CPU: fake graphs that run the eager step
into the buffer they own stand in for captured ones (test_cuda.py checks real ones)."""

import pytest
import torch

from songgen.config import ModelConfig
from songgen.model.lstm import CharLSTM
from songgen.model.stepper import StepState, Stepper, _Graph, _use_count

pytestmark = pytest.mark.skipif(_use_count is None, reason="this PyTorch has no storage counts")


class FakeGraph:
    def __init__(self, stepper, ids, state, out):
        self.run = lambda: stepper._step(ids, state, out=out)
        self.replays = 0

    def replay(self):
        self.replays += 1
        self.run()


def setup(n=3):
    torch.manual_seed(5)
    model = CharLSTM(ModelConfig(vocab_size=13, embed_dim=8, hidden_size=16, layers=2)).eval()
    stepper = Stepper(model)
    zeros = (torch.zeros(2, n, 16), torch.zeros(2, n, 16))
    state, ids = StepState(zeros), torch.zeros(n, dtype=torch.long)
    outs = [torch.empty(n, 13) for _ in range(2)]
    fakes = [FakeGraph(stepper, ids, state, out) for out in outs]
    x = torch.randint(0, 13, (n, 12))
    ref_state = StepState(zeros)
    expected = [stepper._step(x[:, t], ref_state) for t in range(12)]
    return _Graph(ids, outs, fakes), fakes, x, expected


def test_a_caller_holding_the_last_logits_alternates_the_two_buffers():
    graph, fakes, x, expected = setup()
    logits = None
    with torch.inference_mode():
        for t in range(12):
            logits = graph.replay(x[:, t])  # as sample._steps: the old logits held meanwhile
            torch.testing.assert_close(logits, expected[t])
    assert [f.replays for f in fakes] == [6, 6]


def test_held_logits_and_views_of_them_are_never_overwritten():
    graph, fakes, x, expected = setup()
    first = graph.replay(x[:, 0])
    row = graph.replay(x[:, 1])[1]  # only a view of the second step's logits is kept
    assert graph.replay(x[:, 2]) is None  # both buffers held: the caller must step eagerly
    torch.testing.assert_close(first, expected[0])
    torch.testing.assert_close(row, expected[1][1])
    del first
    assert graph.replay(x[:, 2]) is not None
    torch.testing.assert_close(row, expected[1][1])
