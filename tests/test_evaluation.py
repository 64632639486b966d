import torch
import torch.nn.functional as F

from songgen.training.batches import eval_rows
from songgen.config import ModelConfig
from songgen.training.evaluation import evaluate
from songgen.model.lstm import CharLSTM


def test_validation_loss_is_the_mean_over_rows_each_read_from_a_blank_state():
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=11, embed_dim=8, hidden_size=16, layers=2)).eval()
    data = torch.randint(0, 11, (5000,))
    x, y = eval_rows(data, rows=4)
    assert len(x) == 4
    with torch.no_grad():
        losses = [F.cross_entropy(model(row_x[None])[0][0], row_y, reduction="none")
                  for row_x, row_y in zip(x, y)]
    expected = torch.cat(losses).mean().item()
    # Streamed in chunks with the state carried across them: the same figure.
    assert abs(evaluate(model, data, torch.device("cpu"), rows=4, chunk=37) - expected) < 1e-5
