import random
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

WORDS = ("love river night road home rain heart light stone morning song wind bell "
         "golden summer winter gone away down over the my your and").split()


def make_songs(n: int = 40, seed: int = 0) -> str:
    """A small corpus in the lyric format: titles, stanzas, songs split by two blank lines."""
    rng = random.Random(seed)
    songs = []
    for i in range(n):
        title = f"# {rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {i}"
        stanzas = []
        for _ in range(rng.randint(2, 4)):
            lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))
                     for _ in range(4)]
            stanzas.append("\n".join(lines))
        songs.append(title + "\n\n" + "\n\n".join(stanzas))
    return "\n\n\n".join(songs) + "\n"


@pytest.fixture
def songs_file(tmp_path) -> Path:
    path = tmp_path / "songs.txt"
    path.write_text(make_songs(), encoding="utf-8")
    return path


@pytest.fixture
def tiny_model() -> dict:
    return {"embed_dim": 8, "hidden_size": 16, "layers": 2, "dropout": 0.1}


@pytest.fixture
def tiny_config(tmp_path):
    from songgen.config import TrainConfig

    def make(**overrides):
        base = dict(seq_len=16, batch_size=4, eval_every=5, device="cpu", threads=1,
                    checkpoint_dir=str(tmp_path / "ckpt"), patience=0)
        base.update(overrides)
        return TrainConfig(**base)

    return make


@pytest.fixture(autouse=True)
def own_cache_folder(tmp_path):
    # Corpus caches of texts that are not a run's own go to the user's cache folder: a test's
    # go to its own, never to the real ~/.cache (a patch of its own: a test's undo keeps it).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGGEN_CACHE_DIR", str(tmp_path / "user-cache"))
        yield


@pytest.fixture(scope="session", autouse=True)
def no_base_model():
    # Tests train and sample as an installation without a bundled base model does, whether
    # or not songgen/base/verse.pt is there; tests/test_base_model.py points songgen at a tiny
    # base model of its own ($SONGGEN_BASE_MODEL: docs/development.md), and
    # tests/test_bundled_base.py lifts it. Session-wide: module fixtures (a studio) see it too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGGEN_BASE_MODEL", "")
        yield


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    # Tiny test models are faster on one thread: waking a pool of threads for every small op
    # costs more than the op, and much more on a busy machine.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def straight_and_resumed(songs_file, tiny_model, tiny_config, tmp_path):
    """The last.pt of a 30-step run, and of the same run stopped at steps 7 and 23 and resumed
    to 30 (7 and 23 are not evaluation steps; 23 crosses an epoch boundary), as raw dicts."""
    import torch

    from songgen.training.loop import train

    straight = tiny_config(steps=30, checkpoint_dir=str(tmp_path / "a"))
    train(songs_file, model=tiny_model, config=straight, quiet=True)
    for stop in (7, 23, 30):
        cfg = tiny_config(steps=stop, checkpoint_dir=str(tmp_path / "b"))
        train(songs_file, model=tiny_model, config=cfg, resume=stop != 7, quiet=True)
    return tuple(torch.load(tmp_path / run / "last.pt", weights_only=True) for run in "ab")
