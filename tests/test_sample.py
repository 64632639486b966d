import math

import pytest
import torch

from songgen.run import checkpoint as ckpt
from songgen.run.trained import load_checkpoint
from songgen.config import ModelConfig
from songgen.text.vocab import EOS, Vocab
from songgen.errors import ConfigError
from songgen.model.lstm import CharLSTM
from songgen.writing.sampling import generate, stream
from songgen.writing.drawing import filter_logits


def make_trained(tmp_path, text="# ab\n\nab ba\n", eos_bias=0.0):
    torch.manual_seed(0)
    vocab = Vocab.from_text(text)
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_size=16, layers=2))
    with torch.no_grad():
        model.head.bias[0] += eos_bias
    checkpoint = ckpt.Checkpoint(model_config=model.config, vocab=vocab.chars,
                                 model_state=model.state_dict(), step=7)
    path = tmp_path / "m.pt"
    ckpt.save(checkpoint, path)
    return load_checkpoint(path, device="cpu")


def test_step_by_step_equals_full_sequence_forward():
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=11, embed_dim=8, hidden_size=16, layers=2)).eval()
    x = torch.randint(0, 11, (3, 20))
    full, _ = model(x)
    state, steps = None, []
    for t in range(20):
        logits, state = model(x[:, t:t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    out = filter_logits(logits, top_k=2)
    assert out.tolist() == [[-math.inf, 3.0, 2.0, -math.inf]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = lambda p: torch.isfinite(filter_logits(logits, top_p=p)).tolist()[0]
    assert kept(0.5) == [True, False, False, False]
    assert kept(0.6) == [True, True, False, False]
    assert kept(0.8) == [True, True, False, False]
    assert kept(0.81) == [True, True, True, False]
    assert kept(1.0) == [True, True, True, True]
    renorm = torch.softmax(filter_logits(logits, top_p=0.8), -1)
    torch.testing.assert_close(renorm, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))


def test_same_seed_same_songs_and_stream_matches_generate(tmp_path):
    trained = make_trained(tmp_path)
    a = generate(trained, num_songs=3, seed=5, length=200)
    b = generate(trained, num_songs=3, seed=5, length=200)
    assert [s.text for s in a] == [s.text for s in b]
    one = generate(trained, num_songs=1, seed=9, length=200, prime="# a")
    assert "".join(stream(trained, seed=9, length=200, prime="# a")) == one[0].text
    (tmp_path / "endless").mkdir()
    endless = make_trained(tmp_path / "endless", eos_bias=-50.0)
    for lines in (1, 2):  # cut after a line: no line end left over, in either
        cut = generate(endless, seed=9, length=200, prime="# a", max_lines=lines)[0]
        assert cut.stop == "max-lines" and not cut.text.endswith("\n")
        assert "".join(stream(endless, seed=9, length=200, prime="# a",
                              max_lines=lines)) == cut.text
    assert one[0].text.startswith("# a")
    assert all(EOS not in s.text and len(s.text) <= 200 for s in a)


def test_songs_stop_at_end_of_song(tmp_path):
    trained = make_trained(tmp_path, eos_bias=50.0)
    songs = generate(trained, num_songs=4, prime="ab", seed=1)
    assert [s.text for s in songs] == ["ab"] * 4
    assert all(s.ended for s in songs)


def test_length_caps_a_song_that_never_ends(tmp_path):
    trained = make_trained(tmp_path, eos_bias=-50.0)
    songs = generate(trained, num_songs=2, length=50, seed=1)
    assert [len(s.text) for s in songs] == [50, 50]
    assert not any(s.ended for s in songs)


def test_greedy_is_deterministic_without_a_seed(tmp_path):
    trained = make_trained(tmp_path)
    assert generate(trained, temperature=0, length=60)[0].text == \
        generate(trained, temperature=0, length=60)[0].text


def test_prime_with_unseen_characters_lists_them(tmp_path):
    trained = make_trained(tmp_path)
    with pytest.raises(ConfigError, match="the prime has characters the model never saw: "
                                          "'x', 'z'; remove or replace them"):
        generate(trained, prime="zab x")


def test_packed_stepper_equals_nn_lstm():
    from songgen.model.stepper import StepState, Stepper

    torch.manual_seed(1)
    model = CharLSTM(ModelConfig(vocab_size=13, embed_dim=8, hidden_size=16, layers=3)).eval()
    x = torch.randint(0, 13, (4, 12))
    full, _ = model(x)
    stepper = Stepper(model)
    state = StepState((torch.zeros(3, 4, 16), torch.zeros(3, 4, 16)))
    steps = torch.stack([stepper.step(x[:, t], state) for t in range(12)], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not __import__("songgen.model.stepper").model.stepper.int8_available(),
                    reason="this PyTorch has no int8 CPU kernels")
def test_int8_stepper_stays_close_to_float():
    from songgen.model.stepper import StepState, Stepper

    torch.manual_seed(2)
    model = CharLSTM(ModelConfig(vocab_size=13, embed_dim=8, hidden_size=64, layers=2)).eval()
    x = torch.randint(0, 13, (2, 30))
    full, _ = model(x)
    stepper = Stepper(model, int8=True)
    state = StepState((torch.zeros(2, 2, 64), torch.zeros(2, 2, 64)))
    steps = torch.stack([stepper.step(x[:, t], state) for t in range(30)], dim=1)
    probs, ref = torch.softmax(steps, -1), torch.softmax(full, -1)
    assert (probs - ref).abs().max() < 0.02


def test_int8_sampling_is_reproducible(tmp_path):
    trained = make_trained(tmp_path)
    a = generate(trained, num_songs=2, seed=4, length=80, precision="int8")
    b = generate(trained, num_songs=2, seed=4, length=80, precision="int8")
    assert [s.text for s in a] == [s.text for s in b]
    with pytest.raises(ConfigError, match="unknown sampling precision"):
        generate(trained, precision="int4")


def test_draw_follows_the_probabilities_and_never_picks_an_impossible_symbol():
    from songgen.writing.drawing import draw

    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0]]).expand(200_000, -1)
    gen = torch.Generator().manual_seed(3)
    # 200,000 draws: the standard error of each share is about 0.001.
    for temperature in (1.0, 0.5):
        shaped = probs ** (1 / temperature)
        expected = shaped[0, :3] / shaped[0].sum()
        counts = torch.bincount(draw(probs.log(), gen, temperature), minlength=4)
        assert counts[3] == 0
        torch.testing.assert_close(counts[:3] / 200_000, expected, atol=0.005, rtol=0)


@pytest.mark.parametrize("layers", [1, 3])
def test_worked_out_weight_shapes_are_the_models(layers):
    from songgen.model.lstm import weight_shapes
    from songgen.model.probes import parameter_count

    config = ModelConfig(vocab_size=7, embed_dim=5, hidden_size=6, layers=layers)
    model = CharLSTM(config)
    assert weight_shapes(config) == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_sampling_does_not_import_the_compiler(tmp_path):
    # Building even a meta-device model to check a checkpoint's shapes used to import
    # torch._dynamo: about a second before the first character of every song.
    import subprocess
    import sys

    make_trained(tmp_path)
    code = ("import sys; from songgen.writing.sampling import generate; "
            f"generate({str(tmp_path / 'm.pt')!r}, length=20, seed=1); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
