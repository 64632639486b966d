"""Checkpoint files made to hurt (#38): refused before torch.load reads them, with a message that
says what they are, at little cost in memory, by every command that opens a checkpoint."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from songgen.run import checkpoint as ckpt
from songgen.run.info import summary
from songgen.cli.commands import cli
from songgen.errors import CheckpointError

from .checkpoint_support import OLD, rezip

def _state():
    return torch.load(OLD, weights_only=True)


def _pickled(state, protocol: int = 2) -> bytes:
    """The data.pkl torch.save writes for `state`."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer, pickle_protocol=protocol)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


_PEAK = """
import resource, sys
from songgen.run import checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    checkpoint.{how}(sys.argv[1])
    print("loaded")
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.parametrize("how", ["load", "peek"])
def test_a_compressed_padded_pickle_is_refused_without_inflating_it(tmp_path, how):
    bomb = rezip(tmp_path / "bomb.pt", padding=300 << 20, compress=True)
    assert bomb.stat().st_size < 2 << 20  # 300 MB of padding packs into under a megabyte
    run = subprocess.run([sys.executable, "-c", _PEAK.format(how=how), str(bomb)],
                         capture_output=True, text=True, timeout=120)
    said, grown = run.stdout.strip().splitlines()
    assert said.startswith("refused: UnreadableCheckpoint"), said
    assert "is not a checkpoint songgen wrote (its entry" in said and "compressed" in said
    assert int(grown) < 100, f"loading took {grown} MB more memory"


def test_a_storage_larger_than_its_tensor_and_too_many_entries_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"its storage 0 holds [\d,]+ bytes for a tensor"):
        ckpt.load(rezip(tmp_path / "grown.pt", grow="0"))
    with pytest.raises(CheckpointError, match="entries, where songgen writes a few hundred"):
        ckpt.peek(rezip(tmp_path / "many.pt", extra=5000))
    # The same archive rewritten by hand, as torch.save writes it, still loads.
    assert ckpt.load(rezip(tmp_path / "same.pt")).step == ckpt.load(OLD).step


class _Run:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_checkpoint_that_carries_code_says_so_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "ran"
    state = _state()
    state["choices"] = {"x": _Run(marker)}
    hostile = rezip(tmp_path / "code.pt", pickle_bytes=_pickled(state, protocol))
    for args in (["info", str(hostile)], ["sample", "--checkpoint", str(hostile)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        message = result.output.strip().splitlines()[-1]
        assert "holds Python code or objects (posix.system)" in message, message
        assert "none of it ran" in message and "do not open it some other way" in message
        assert "corrupt" not in message
    assert not marker.exists()


def test_info_json_on_deeply_nested_records_is_a_one_line_error(tmp_path):
    state = _state()
    state.pop("checksum", None)
    deep: dict = {}
    for _ in range(3000):
        deep = {"value": deep}
    state["choices"] = {"deep": deep}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)
    try:
        data = _pickled(state)
    finally:
        sys.setrecursionlimit(limit)
    nested = rezip(tmp_path / "deep.pt", pickle_bytes=data)
    result = CliRunner().invoke(cli, ["info", "--json", str(nested)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {nested} is damaged or not a checkpoint (its contents nest too deep or hold "
        "themselves); give a .pt file that songgen train wrote (a run's folder holds last.pt, "
        "best.pt and step-N.pt; an older one may still be whole)")


def test_a_real_checkpoint_passes_every_check(tmp_path):
    loaded = ckpt.load(OLD)
    assert json.dumps(summary(loaded, OLD))  # printable
    assert ckpt.peek(OLD).step == loaded.step


def test_a_link_to_a_checkpoint_is_read_and_a_pipe_refused_at_once(tmp_path):
    """The archive check opens the user's file as files.open_regular does (its own copy was
    folded into it): a link the user names is followed, a named pipe is refused unopened."""
    import os

    from songgen.run.safeload import read_dict

    link = tmp_path / "link.pt"
    link.symlink_to(OLD)
    assert read_dict(link)["step"] == _state()["step"]
    os.mkfifo(tmp_path / "pipe.pt")
    with pytest.raises(CheckpointError, match="pipe.pt"):
        read_dict(tmp_path / "pipe.pt")  # would wait forever for a writer if opened blocking
