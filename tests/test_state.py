"""The training state (songgen.training.state) on its own, without the loop: built fresh, stepped,
turned into a checkpoint file and back, it goes on exactly as if it had never stopped."""

import torch

from songgen.run import checkpoint as ckpt
from songgen.run.folder import RunFolder
from songgen.training.batches import StreamBatches
from songgen.config import ModelConfig, TrainConfig
from songgen.training.plan import Plan
from songgen.training.team import Team
from songgen.text.corpus import load_corpus
from songgen.training.state import TrainState, song_start_context
from songgen.training.loop import train_step

CPU = torch.device("cpu")


def _state(corpus, saved=None, team=None):
    config = TrainConfig(batch_size=4, seq_len=16, lr=3e-3, weight_decay=0.01, seed=7,
                         precision="fp32", device="cpu")
    # Dropout draws random numbers at every step: the random state must travel too.
    model = ModelConfig(vocab_size=len(corpus.vocab), embed_dim=8, hidden_size=16, layers=2,
                        dropout=0.2)
    batches = StreamBatches(corpus.train, config.batch_size, config.seq_len)
    team = team or Team()
    plan = Plan(corpus, model, config, CPU, torch.float32, RunFolder("unused"), team,
                quiet=True, choices={}, schedule="plateau", rows=team.rows(config.batch_size),
                steps_an_epoch=len(batches))
    state = TrainState(plan).start(saved)
    return state, batches


def _steps(state, batches, n):
    for _ in range(n):
        train_step(state, batches, state.model)


def test_a_state_saved_and_loaded_goes_on_exactly_as_one_that_never_stopped(songs_file,
                                                                            tmp_path):
    corpus = load_corpus(songs_file, 0.1)
    straight, batches = _state(corpus)
    total = len(batches) + 3  # across an epoch's end, where the streams start again
    stop = len(batches) - 2   # with a carried LSTM state to save
    _steps(straight, batches, total)

    first, _ = _state(corpus)
    _steps(first, batches, stop)
    assert first.stream is not None
    saved = first.to_checkpoint(corpus, song_start_context(corpus.train), elapsed=1.5)
    ckpt.save(saved, tmp_path / "k.pt")
    torch.manual_seed(999)  # whatever happens in between, the checkpoint's random state wins
    resumed, _ = _state(corpus, ckpt.load(tmp_path / "k.pt"))
    assert (resumed.step, resumed.epoch, resumed.position) == (stop, 0, stop)
    assert resumed.elapsed_before == 1.5 and resumed.saved_step == stop
    _steps(resumed, batches, total - stop)

    assert (resumed.step, resumed.epoch, resumed.position) == (
        straight.step, straight.epoch, straight.position) == (total, 1, 3)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    for a, b in zip(straight.stream, resumed.stream):
        assert torch.equal(a, b)
    moments = straight.optimizer.state_dict()["state"]
    for key, value in resumed.optimizer.state_dict()["state"].items():
        assert torch.equal(value["exp_avg"], moments[key]["exp_avg"])
        assert torch.equal(value["exp_avg_sq"], moments[key]["exp_avg_sq"])


def test_a_fresh_state_is_seeded_and_a_step_moves_the_streams_on(songs_file):
    corpus = load_corpus(songs_file, 0.1)
    a, batches = _state(corpus)
    b, _ = _state(corpus)
    for name, value in a.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[name], value)  # the same seed, the same model
    before = {k: v.clone() for k, v in a.model.state_dict().items()}
    loss = train_step(a, batches, a.model)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert (a.step, a.epoch, a.position) == (1, 0, 1)
    assert a.stream[0].dtype == torch.float32 and not a.stream[0].requires_grad
    assert any(not torch.equal(before[k], v) for k, v in a.model.state_dict().items())


def test_each_process_of_a_team_resumes_its_own_rows_of_the_saved_streams(songs_file,
                                                                          tmp_path):
    """A run saved by one process and resumed by a team: process 1 of 2 carries on rows 2 and
    3 of the 4 (the rows its plan gives it), so the streams go on where they stopped."""
    corpus = load_corpus(songs_file, 0.1)
    alone, batches = _state(corpus)
    _steps(alone, batches, 3)
    ckpt.save(alone.to_checkpoint(corpus, song_start_context(corpus.train), elapsed=1.0),
              tmp_path / "k.pt")
    second, _ = _state(corpus, ckpt.load(tmp_path / "k.pt"), team=Team(rank=1, world=2))
    assert second.step == 3
    for whole, share in zip(alone.stream, second.stream):
        assert share.shape[1] == 2 and torch.equal(share, whole[:, 2:4])
