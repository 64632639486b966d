"""Songs written in several threads at once (the studio runs two writes at a time): the song
crafter's shared word masks stay whole, and every write gives the songs it gives alone."""

import sys
import threading

import pytest
import torch

from songgen.writing.sampling import generate

from .test_songcraft import SONGS, craft_checkpoint


@pytest.fixture
def switch_often():
    """Threads switch every microsecond: an unguarded step shared by two threads then breaks
    within a few writes, not once in a thousand."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_writes_in_parallel_threads_on_two_models_all_succeed(tmp_path, switch_often):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # Two character sets: one model's mask table would not fit the other's scores.
    models = [craft_checkpoint(tmp_path / "a", name="a.pt"),
              craft_checkpoint(tmp_path / "b", songs=[s.upper() + " zq" for s in SONGS],
                               name="b.pt")]
    options = dict(num_songs=16, length=1200, temperature=1.5, rhyme="off", chorus="off")
    alone = {(m, seed): [s.text for s in generate(models[m], seed=seed, **options)]
             for m, seed in ((0, 1), (1, 2))}
    errors, results = [], {}

    def write(m: int, seed: int, round_: int) -> None:
        try:
            results[m, seed, round_] = [s.text for s in generate(models[m], seed=seed,
                                                                 **options)]
        except Exception as exc:  # the failure the test is about: kept to be shown
            errors.append(f"{type(exc).__name__}: {exc}")

    torch.set_num_threads(1)
    for round_ in range(3):
        threads = [threading.Thread(target=write, args=(m, seed, round_))
                   for m, seed in ((0, 1), (0, 1), (1, 2), (1, 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    for (m, seed, _), texts in results.items():
        assert texts == alone[m, seed]
    # And after them, a write on each model still works.
    assert [s.text for s in generate(models[0], seed=1, **options)] == alone[0, 1]
