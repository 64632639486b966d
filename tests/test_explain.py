"""songgen explain: per-character scores that add up to eval's loss, the choices at each
character, the page, the cells, and bad input."""

import base64
import json
import math
import re

import numpy as np
import pytest
import torch


from .conftest import make_songs
from .explain_support import invoke, run  # noqa: F401 (run: the module's trained run)


def records(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_mean_surprise_is_evals_loss_on_a_text_read_in_several_stretches(run):
    text = run / "other.txt"
    from songgen.training.batches import eval_rows
    from songgen.text.corpus import encode_corpus

    # The text is read in several rows with a few characters left after the cut: the case in
    # which a second, different scoring would drift from eval's.
    n = len(encode_corpus(text).ids) - 1
    x, _ = eval_rows(torch.zeros(n + 1), 32)
    assert len(x) > 1 and x.numel() < n
    found = records(invoke("explain", text, "--checkpoint", run / "ck", "--json"))
    loss = json.loads(invoke("eval", text, "--checkpoint", run / "ck", "--json",
                             "--corpus-cache", "none").stdout)["loss"]
    assert len(found) == n
    assert abs(np.mean([-math.log(r["p"]) for r in found]) - loss) < 1e-4
    assert [r["char"] for r in found][:3] == ["#", " ", text.read_text()[2]]
    assert sum(r.get("end", False) for r in found) == 12  # one end-of-song symbol a song
    assert sum(r.get("restart", False) for r in found) == len(x) - 1


def test_eval_scores_the_characters_the_row_cut_leaves_too(run):
    """Every character counts in eval's loss: the few after the last full column are read on
    from the last row (they were dropped before, and eval's count said they were scored)."""
    import torch.nn.functional as F

    from songgen.training.batches import eval_rows
    from songgen.training.evaluation import evaluate_text
    from songgen.text.corpus import encode_corpus
    from songgen.run.trained import load_checkpoint

    trained = load_checkpoint(run / "ck", "cpu")
    data = encode_corpus(run / "other.txt", vocab=trained.vocab).ids
    x, y = eval_rows(data, 32)
    with torch.no_grad():
        logits, state = trained.model(x.long())
        tail, _ = trained.model(data[x.numel():-1].long()[None],
                                tuple(t[:, -1:].contiguous() for t in state))
    losses = torch.cat([F.cross_entropy(logits.flatten(0, 1), y.flatten().long(),
                                        reduction="none"),
                        F.cross_entropy(tail[0], data[x.numel() + 1:].long(), reduction="none")])
    score = evaluate_text(run / "other.txt", trained, cache="none")
    assert score.chars == len(losses)
    assert abs(score.loss - losses.mean().item()) < 1e-5


def test_p_is_the_models_probability_from_the_text_before_it(run, tmp_path):
    from songgen.text.corpus import encode_corpus
    from songgen.run.trained import load_checkpoint

    short = tmp_path / "short.txt"
    short.write_text("# Rain Home\n\nthe river and my heart\ngone away\n", encoding="utf-8")
    found = records(invoke("explain", short, "--checkpoint", run / "ck", "--json", "--top", 5))
    trained = load_checkpoint(run / "ck", "cpu")
    ids = encode_corpus(short, vocab=trained.vocab).ids.long()
    with torch.no_grad():
        probs = torch.softmax(trained.model(ids[None])[0][0], -1)  # one row: < 2,000 chars
    for j, record in enumerate(found):
        assert record["p"] == pytest.approx(probs[j, ids[j + 1]].item(), rel=1e-4)
        assert len(record["top"]) == 5
        ps = [p for _, p in record["top"]]
        assert ps == sorted(ps, reverse=True)
        assert ps[0] == pytest.approx(probs[j].max().item(), rel=1e-4)
        if record["char"] in [c for c, _ in record["top"]]:
            assert dict(map(tuple, record["top"]))[record["char"]] == record["p"]
    assert found[-1] == {**found[-1], "char": "", "end": True}


def test_standard_input_and_unknown_characters(run):
    text = "# Rain\n\nthe river é and my heart\ngone away\n"
    found = records(invoke("explain", "-", "--checkpoint", run / "ck", "--json", input=text))
    unknown = [r for r in found if r.get("unknown")]
    assert [r["char"] for r in unknown] == ["é"] and unknown[0]["p"] is None
    # Its choices are those for the next character, which the model reads right after " ".
    after = found[found.index(unknown[0]) + 1]
    assert unknown[0]["top"] == after["top"]
    skipped = invoke("eval", "-", "--checkpoint", run / "ck", "--json", "--skip-unknown")
    if skipped.exit_code == 0:  # eval may not read standard input; then score a file
        loss = json.loads(skipped.stdout)["loss"]
        known = [-math.log(r["p"]) for r in found if r["p"] is not None]
        assert abs(np.mean(known) - loss) < 1e-4


def test_unknown_characters_score_as_eval_skip_unknown(run, tmp_path):
    path = tmp_path / "odd.txt"
    path.write_text("# Rain\n\nthe river é and my heart\ngone away Ω\n", encoding="utf-8")
    found = records(invoke("explain", path, "--checkpoint", run / "ck", "--json"))
    loss = json.loads(invoke("eval", path, "--checkpoint", run / "ck", "--json",
                             "--skip-unknown", "--corpus-cache", "none").stdout)["loss"]
    known = [-math.log(r["p"]) for r in found if r["p"] is not None]
    assert sum(r["p"] is None for r in found) == 2
    assert abs(np.mean(known) - loss) < 1e-4


@pytest.mark.parametrize("content, message", [
    ("", "holds no lyrics (it is empty or only whitespace)"),
    ("\n \n\t\n", "holds no lyrics"),
    ("\x00\x01binary\n", "binary"),
])
def test_bad_text_is_a_one_line_error(run, tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    result = invoke("explain", path, "--checkpoint", run / "ck", "--json")
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_empty_standard_input_names_it(run):
    result = invoke("explain", "-", "--checkpoint", run / "ck", input="")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: standard input holds no lyrics")


def test_damaged_checkpoint_is_a_one_line_error(run, tmp_path):
    bad = tmp_path / "bad.pt"
    data = (run / "ck" / "last.pt").read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    result = invoke("explain", run / "other.txt", "--checkpoint", bad, "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and str(bad) in result.stderr


def _page_data(path) -> dict:
    html = path.read_text(encoding="utf-8")
    found = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def _array(data, name, dtype):
    return np.frombuffer(base64.b64decode(data["arrays"][name]), dtype=dtype)


def test_page_is_self_contained_and_agrees_with_the_json(run, tmp_path):
    page = tmp_path / "page.html"
    result = invoke("explain", run / "other.txt", "--checkpoint", run / "ck", "-o", page,
                    "--json")
    found = records(result)
    html = page.read_text(encoding="utf-8")
    # Nothing fetched: no address anywhere, no external script, style or image.
    assert not re.search(r"https?://|src=|href=|@import|url\(", html)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    data = _page_data(page)
    assert data["n"] == len(found)
    p = np.exp(_array(data, "logp", np.float32).astype(np.float64))
    assert np.allclose(p, [r["p"] for r in found], rtol=1e-5)
    k = data["k"]
    top = _array(data, "top_ids", np.uint16).reshape(-1, k)
    top_p = np.exp(_array(data, "top_logp", np.float32)).reshape(-1, k)
    for i in (0, 7, len(found) - 1):
        assert [data["chars"][c] for c in top[i, :10]] == [c for c, _ in found[i]["top"]]
        assert np.allclose(top_p[i, :10], [p for _, p in found[i]["top"]], rtol=1e-5)
    # The choices kept and the rest's mass make up the whole distribution.
    rest = np.exp(_array(data, "rest_logp", np.float32).astype(np.float64))
    assert np.allclose(top_p.sum(1) + rest, 1, atol=1e-5)
    assert set(data["features"]) == {"line position", "title", "stanza end", "quotes"}
    assert data["features"]["title"]["cells"] and not data["features"]["quotes"]["cells"]
    cells = _array(data, "cells", np.int8).reshape(len(found), -1)
    assert cells.shape[1] == len(data["cell_names"]) == 32  # 2 layers x 16: all kept


def test_page_never_overwrites_and_refuses_a_text_too_long(run, tmp_path, monkeypatch):
    page = tmp_path / "page.html"
    page.write_text("mine", encoding="utf-8")
    result = invoke("explain", run / "other.txt", "--checkpoint", run / "ck", "-o", page)
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert page.read_text(encoding="utf-8") == "mine"
    import songgen.inside.explain as explain

    monkeypatch.setattr(explain, "PAGE_LIMIT", 100)
    monkeypatch.setattr("songgen.cli.explain.PAGE_LIMIT", 100, raising=False)
    result = invoke("explain", run / "other.txt", "--checkpoint", run / "ck", "-o",
                    tmp_path / "new.html")
    assert result.exit_code == 1
    assert re.match(r"Error: the text has [\d,]+ characters, more than a page shows \(100\); "
                    r"explain a part of it \(one song, say\), or use --json", result.stderr)
    assert not (tmp_path / "new.html").exists()


def test_cell_values_are_tanh_of_the_cell_state_step_by_step(run):
    from songgen.inside.cells import cell_values
    from songgen.run.trained import load_checkpoint

    model = load_checkpoint(run / "ck", "cpu").model
    ids = torch.randint(0, model.config.vocab_size, (40,), generator=torch.Generator().manual_seed(1))
    values = cell_values(model, ids, torch.device("cpu"))
    # The layers stepped one symbol at a time by nn.LSTM itself, its cell state read out.
    state, expected = None, []
    with torch.no_grad():
        for i in ids:
            _, state = model.lstm(model.embed(i.view(1, 1)), state)
            expected.append(torch.tanh(state[1][:, 0]).flatten())
    assert np.allclose(values, torch.stack(expected).numpy(), atol=1e-4)


def test_features_and_the_cells_that_follow_them():
    from songgen.inside.cells import features, suggest

    text = '# Home\n\nsay "go" now\nrain\n\nlast\n\x00'
    found = features(text)
    line = "".join(str(int(v)) if v < 10 else "+" for v in found["line position"])
    assert line.startswith("0123456" + "0" + "0123")
    assert "".join("t" if v else "." for v in found["title"]) == "tttttt" + "." * (len(text) - 6)
    inside = [c for c, v in zip(text, found["quotes"]) if v]
    assert "".join(inside) == "go"
    ends = "".join(c for c, v in zip(text, found["stanza end"]) if v)
    assert ends == "# Homerainlast"  # the title is a stanza of one line, before its blank line
    rng = np.random.default_rng(0)
    values = rng.normal(size=(len(text), 6)).astype(np.float32)
    values[:, 4] = -found["line position"] + rng.normal(scale=0.1, size=len(text))
    best = suggest(values, found)
    assert best["line position"][0][0] == 4 and best["line position"][0][1] < -0.9
    assert len(best["quotes"]) == 3


def test_explain_of_a_5000_character_song_is_one_pass(run, tmp_path, monkeypatch):
    """One forward pass over the text (as eval), never a step per character."""
    from songgen.model import lstm as model_module
    from songgen.inside.explain import explain_text

    song = "# Long\n\n" + "\n".join(f"the river and my heart {i}" for i in range(200))
    path = tmp_path / "long.txt"
    path.write_text(song[:5000], encoding="utf-8")
    calls = []
    forward = model_module.CharLSTM.forward
    monkeypatch.setattr(model_module.CharLSTM, "forward",
                        lambda self, *a, **k: calls.append(a[0].shape) or forward(self, *a, **k))
    found = explain_text(path, run / "ck", device="cpu")
    assert len(found) >= 4900 and len(calls) <= 3


# -- the studio's Inside view -------------------------------------------------------------

def test_studio_explains_a_pasted_text_with_what_the_steps_did(tmp_path):
    from .studio_support import Client, make_runs, studio

    root = make_runs(tmp_path / "runs")
    text = "# Rain Home\n\nthe river and my heart\ngone away\n"
    with studio(root) as server:
        client = Client(server)

        def post(body, headers=None):
            _, res = client.post(body, path="/api/explain", headers=headers)
            return res.status, json.loads(res.read())
        status, data = post({"model": "runA/best.pt", "text": text, "temperature": 0.5,
                             "top_k": 3})
        assert status == 200, data
        items = data["items"]
        assert "".join(data["chars"][i["id"]] for i in items) == text.strip("\n")
        assert data["steps"] == {"temperature": 0.5, "top_k": 3, "top_p": 1.0, "shape": "song"}
        # A titled song starts with "#": the shape forces it, and says so.
        first = items[0]
        assert first["rules"] == ["a titled song starts with '#'"] and first["p_final"] == 1
        assert all(c[2] == 0 and c[4] == "removed by the shape" for c in first["choices"]
                   if data["chars"][c[0]] != "#")
        # Top-k 3 leaves three choices wherever the shape leaves more.
        for item in items[3:]:
            live = [c for c in item["choices"] if c[3] > 0]
            assert len(live) <= 3
            assert all(c[4] == "dropped by top-k" for c in item["choices"] if c[3] == 0
                       and c[2] > 0)
        status, data = post({"model": "runA/best.pt", "text": "x" * 5001})
        assert status == 400 and "too long to explain here" in data["error"]
        status, data = post({"model": "runA/best.pt", "text": "  "})
        assert status == 400 and data["error"] == "paste a text to explain"
        status, data = post({"model": "../x.pt", "text": text})
        assert status in (400, 404)
        # From another site: refused, as every POST is.
        status, _ = post({"model": "runA/best.pt", "text": text},
                         headers={"Origin": "http://evil.example"})
        assert status == 403


def test_the_summary_names_the_end_of_a_song(capsys):
    """The end of a song (the vocabulary's "\\x00") was printed as '\\x00', never as [end]."""
    from songgen.cli.explain import _summary
    from songgen.inside.explain import Explanation

    chars = ["\x00", "\n", "a", "b"]
    ids = np.array([2, 3, 0])                   # "ab", then the end of the song
    logp = np.log(np.array([0.5, 0.25, 0.125]))
    top_ids = np.array([[2, 3], [0, 3], [2, 0]])  # where "b" came, the end was likeliest
    found = Explanation(chars, 4, ids, logp, top_ids, logp[:, None].repeat(2, 1),
                        np.full(3, -np.inf), np.zeros(3, bool))
    _summary(found)
    assert capsys.readouterr().out == (
        f"{found.loss:.4f} nats/char  {found.loss / math.log(2):.4f} bits/char  (3 characters)\n"
        "  3.0 bits  [end] where 'a' was likeliest: 'ab'\n"
        "  2.0 bits  'b' where [end] was likeliest: 'ab'\n"
        "  1.0 bits  'a' where 'a' was likeliest: 'ab'\n")


def test_the_checkpoint_may_be_given_as_eval_takes_it(run):
    """`songgen explain TEXT CHECKPOINT`, as `songgen eval TEXT CHECKPOINT`; two different
    checkpoints are refused."""
    given = records(invoke("explain", run / "other.txt", run / "ck", "--json", "--top", 5))
    option = records(invoke("explain", run / "other.txt", "--checkpoint", run / "ck", "--json",
                            "--top", 5))
    assert given == option
    both = invoke("explain", run / "other.txt", run / "ck", "--checkpoint", run / "elsewhere")
    assert both.exit_code == 2 and "two checkpoints given" in both.output


def test_the_training_text_is_read_in_the_runs_encoding(tmp_path):
    """A run trained on a cp1252 text: explain reads that text in cp1252 unless told
    otherwise, as eval does (read as UTF-8 it would not even decode)."""
    from songgen import TrainConfig, train

    corpus = tmp_path / "songs.txt"
    corpus.write_bytes(make_songs(8).replace("a", "\u00e9", 40).encode("cp1252"))
    config = TrainConfig(seq_len=16, batch_size=4, eval_every=5, device="cpu", patience=0,
                         checkpoint_dir=str(tmp_path / "ck"), steps=5, seed=0,
                         encoding="cp1252")
    train(corpus, model={"embed_dim": 8, "hidden_size": 16, "layers": 1, "dropout": 0.0},
          config=config, quiet=True)
    found = records(invoke("explain", corpus, tmp_path / "ck", "--json"))
    loss = json.loads(invoke("eval", corpus, tmp_path / "ck", "--json").stdout)["loss"]
    assert "\u00e9" in "".join(r["char"] for r in found)
    assert abs(sum(-math.log(r["p"]) for r in found) / len(found) - loss) < 1e-3
