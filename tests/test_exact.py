"""Exact on every CPU (#22): the numeric choices of a run are made once, kept and shared.

Each kind of CPU is stood in for whatever CPU runs the tests: its native bf16 instructions
(none, AVX-512 BF16, AMX) and the answers of the bf16 probe are replaced. Where a test must
really compute in bf16 and this CPU's oneDNN cannot, it is skipped.
"""

import warnings

import pytest
import torch
from click.testing import CliRunner

from songgen.model import devices

from songgen.training import plan

from songgen.training import loop as training
from songgen.cli.commands import cli
from songgen.errors import DeviceError, SonggenWarning
from songgen.model.probes import Probe, _disturbance
from songgen.training.loop import train

from .resume_support import assert_same, straight_and_resumed


def _bf16_runs() -> bool:
    lstm = torch.nn.LSTM(4, 4)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(2, 1, 4))[0].float().sum().backward()
        return True
    except RuntimeError:
        return False


needs_bf16 = pytest.mark.skipif(not _bf16_runs(), reason="oneDNN cannot run a bf16 LSTM here")


@pytest.fixture
def cpu_kind(monkeypatch):
    """Stand in for a CPU: its native bf16 instructions, and what the bf16 probe answers
    from now on (None: it must not be asked). Returns the list of answers given."""
    calls = []

    def make(native, answer=None):
        monkeypatch.setattr(devices, "cpu_bf16_instructions", lambda: native)

        def probe(config, check_cores=True):
            assert answer is not None, "the probe was not expected to run"
            calls.append(answer)
            return Probe(answer)

        monkeypatch.setattr(plan, "bf16_speedup", probe)
        return calls

    return make


@pytest.mark.parametrize("native, first, then, precision", [
    pytest.param("AVX-512 BF16", 1.6, 0.9, "bf16", marks=needs_bf16,
                 id="avx512-probe-yes-then-no"),
    pytest.param("AVX-512 BF16", 0.9, 1.6, "fp32", id="avx512-probe-no-then-yes"),
    pytest.param("AMX", None, None, "bf16", marks=needs_bf16, id="amx"),
    pytest.param(None, None, None, "fp32", id="no-native-bf16")])
def test_a_resume_computes_as_the_run_began_whatever_the_probe_says_now(
        cpu_kind, songs_file, tiny_model, tiny_config, tmp_path, native, first, then, precision):
    calls = cpu_kind(native, first)
    a, b = straight_and_resumed(songs_file, tiny_model, tiny_config, tmp_path,
                                between=lambda: cpu_kind(native, then))
    assert_same(a, b)
    assert a["choices"]["precision"]["value"] == b["choices"]["precision"]["value"] == precision
    # Probed once at each run's creation, never on resume.
    assert calls == ([first, first] if first else [])


@needs_bf16
def test_resuming_a_bf16_run_where_bf16_cannot_run_goes_on_in_fp32_with_a_warning(
        cpu_kind, songs_file, tiny_model, tiny_config):
    cpu_kind("AMX")
    train(songs_file, model=tiny_model, config=tiny_config(steps=7), quiet=True)
    cpu_kind(None)
    with pytest.warns(SonggenWarning, match=r"^the run computed in bf16, but this CPU has no "
                      r"native bf16 \(no AMX or AVX-512 BF16\), so its LSTM cannot run in "
                      r"bf16; it goes on in fp32, so it will not match what it would have "
                      r"computed in bf16$"):
        result = train(songs_file, model=tiny_model, config=tiny_config(steps=12), resume=True,
                       quiet=True)
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    assert state["step"] == 12
    assert state["choices"]["precision"] == {
        "value": "fp32", "reason": "the run computed in bf16 until step 7, which the CPU it "
                                   "was resumed on cannot run"}


@needs_bf16
def test_a_checkpoint_with_a_bf16_lstm_state_resumes_in_fp32(cpu_kind, songs_file, tiny_model,
                                                             tiny_config):
    """Checkpoints of earlier bf16 runs carry their LSTM state in bf16; handed to an fp32 LSTM
    it made oneDNN fail with 'could not create a primitive descriptor'."""
    from songgen.run import checkpoint as ckpt

    cpu_kind("AMX")
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=7), quiet=True)
    saved = ckpt.load(result.checkpoint_dir / "last.pt")
    saved.stream_state = [t.bfloat16() for t in saved.stream_state]
    saved.choices.pop("precision")  # as an older songgen wrote it
    ckpt.save(saved, result.checkpoint_dir / "last.pt")
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=12, precision="fp32"),
                   resume=True, quiet=True)
    assert result.step == 12


@needs_bf16
def test_a_precision_given_on_resume_is_a_change_said_in_one_line(cpu_kind, songs_file,
                                                                 tiny_model, tiny_config,
                                                                 capsys):
    cpu_kind("AMX")
    train(songs_file, model=tiny_model, config=tiny_config(steps=7), quiet=True)
    train(songs_file, model=tiny_model, config=tiny_config(steps=9), resume=True)
    assert ("precision bf16, kept from the run's start: this CPU computes in bf16 natively "
            "(AMX)") in capsys.readouterr().err.splitlines()
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=12, precision="fp32"),
                   resume=True, explicit={"precision"})
    assert ("precision changed on resume: bf16 -> fp32, as asked; the run computes "
            "differently from here on") in capsys.readouterr().err.splitlines()
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    assert state["choices"]["precision"] == {"value": "fp32",
                                             "reason": "as asked on resuming at step 9 (was bf16)"}


def test_info_shows_the_recorded_precision(cpu_kind, songs_file, tiny_model, tiny_config):
    cpu_kind(None)
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    info = CliRunner().invoke(cli, ["info", str(result.checkpoint_dir)])
    assert ("precision fp32: this CPU has no native bf16 (no AMX or AVX-512 BF16)"
            in info.output)


@pytest.mark.parametrize("cap, expected", [
    (None, "AMX"), ("AVX512_CORE_AMX", "AMX"), ("avx512_core_bf16", "AVX-512 BF16"),
    ("AVX512_CORE_FP16", "AVX-512 BF16"), ("AVX512_CORE", None), ("AVX2", None),
    ("NOT_AN_ISA", "AMX")])
def test_native_bf16_is_what_onednn_may_use_under_its_isa_cap(monkeypatch, cap, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert devices.cpu_bf16_instructions() == expected


def test_bf16_asked_for_where_onednn_cannot_run_it_is_a_clear_error(monkeypatch, songs_file,
                                                                    tmp_path):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    result = CliRunner().invoke(cli, ["train", str(songs_file), "--precision", "bf16",
                                      "--device", "cpu", "--steps", "2", "--checkpoint-dir",
                                      str(tmp_path / "ck")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: this CPU has no native bf16 (no AMX or AVX-512 BF16; ONEDNN_MAX_CPU_ISA caps "
        "oneDNN at AVX2), so its LSTM cannot run in bf16; use fp32 or auto")


def test_a_onednn_failure_in_a_step_is_a_one_line_error(monkeypatch, songs_file, tmp_path):
    from songgen.model.lstm import CharLSTM

    def fail(self, x, state=None):
        raise RuntimeError("could not create a primitive descriptor for the LSTM forward "
                           "propagation primitive. Run workload with environment variable "
                           "ONEDNN_VERBOSE=all to get additional diagnostic information.")

    monkeypatch.setattr(devices, "cpu_bf16_instructions", lambda: "AMX")
    monkeypatch.setattr(CharLSTM, "forward", fail)
    result = CliRunner().invoke(cli, ["train", str(songs_file), "--device", "cpu", "--steps",
                                      "2", "--hidden-size", "16", "--threads", "1",
                                      "--checkpoint-dir", str(tmp_path / "ck")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: oneDNN could not run the LSTM on cpu in bf16 (could not create a primitive "
        "descriptor for the LSTM forward propagation primitive); train in fp32 precision "
        "instead (the last checkpoint, if any, is intact)")


# The thread count: tests/test_threads.py.


# -- the distributed team: process 0 decides ---------------------------------------------------

class _Process1:
    """Process 1 of a two-process team, whose process 0 chose bf16."""
    main, rank, world = False, 1, 2

    def gather_objects(self, value):
        from songgen.training.defaults import Choice

        return [Choice("precision", "bf16", "process 0's choice"), value]


def test_every_process_of_a_team_uses_process_0s_precision(cpu_kind, tiny_config):
    from songgen.config import ModelConfig

    calls = cpu_kind("AVX-512 BF16", 0.5)  # this process's probe would say fp32
    choice = plan._precision(tiny_config(), None, None, torch.device("cpu"), _Process1(),
                             ModelConfig(vocab_size=10, hidden_size=16), quiet=True)
    assert (choice.value, choice.reason) == ("bf16", "process 0's choice")
    assert calls == []  # and it did not probe at all


# -- probes that notice they were disturbed (#28 item 3) -------------------------------------

def test_a_probe_says_when_other_programs_disturbed_it():
    assert _disturbance([1.05], free=2, cores=2) is None
    assert (_disturbance([1.05], free=1, cores=2) ==
            "timed while other programs kept 1 of 2 cores busy")
    assert (_disturbance([1.0, 1.8], free=None, cores=2) ==
            "timed while the machine was busy: its timings varied by 1.8x")


def test_the_size_probe_notices_cores_kept_busy(monkeypatch):
    from songgen.config import ModelConfig
    from songgen.model.probes import step_seconds

    monkeypatch.setattr(devices, "cpu_cores", lambda: 4)
    monkeypatch.setattr(devices, "free_cores", lambda sample=0.1: 3)
    probe = step_seconds(ModelConfig(vocab_size=10, hidden_size=8, embed_dim=4), 2, 8,
                         torch.device("cpu"))
    assert probe.value > 0
    assert probe.disturbed == "timed while other programs kept 1 of 4 cores busy"


def test_a_size_chosen_from_a_disturbed_timing_says_so(monkeypatch, songs_file, tmp_path):
    busy = "timed while other programs kept 1 of 2 cores busy"
    monkeypatch.setattr(plan, "step_seconds", lambda *a, **k: Probe(0.5, busy))
    result = CliRunner().invoke(cli, ["train", str(songs_file), "--device", "cpu",
                                      "--precision", "fp32", "--embed-dim", "8", "--layers", "1",
                                      "--seq-len", "16", "--batch-size", "4", "--time-limit",
                                      "1", "--threads", "1", "--checkpoint-dir",
                                      str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "ck" / "last.pt", weights_only=True)
    note = (f"; but the step was {busy} (the fastest timing was used), so this may differ from "
            "what an idle machine would choose")
    assert state["choices"]["hidden size"]["reason"].endswith(note)
    assert state["choices"]["dropout"]["reason"].endswith(note)  # it rests on the timing too
    size = state["choices"]["hidden size"]
    assert f"hidden size {size['value']}: {size['reason']}" in result.output


def test_a_precision_chosen_from_a_disturbed_probe_says_so(monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16_instructions", lambda: "AVX-512 BF16")
    busy = "timed while the machine was busy: its timings varied by 1.9x"
    dtype, why = devices.resolve_precision("auto", torch.device("cpu"),
                                           lambda: Probe(1.3, busy))
    assert dtype == torch.bfloat16
    assert why == ("bf16: this CPU has AVX-512 BF16 and a training step of this model ran "
                   f"1.30x as fast in it ({busy}; the fastest timings were compared)")


def test_the_samplers_int8_choice_is_made_when_the_run_is_created(monkeypatch, songs_file,
                                                                  tiny_model, tiny_config):
    """A 16-unit model samples in float32 (int8 pays only from 256 units); a CPU that would now
    take int8 from 8 units does not change how the run's checkpoints sample."""
    from songgen.model import stepper
    from songgen.run.trained import load_checkpoint

    result = train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    assert state["choices"]["sampling precision"]["value"] == "fp32"
    monkeypatch.setattr(stepper, "_int8_from_units", lambda: 8)
    if not stepper.int8_available():
        pytest.skip("this PyTorch has no int8 kernels")
    trained = load_checkpoint(result.checkpoint_dir / "last.pt", device="cpu")
    assert trained.stepper("auto") is trained.stepper("fp32")
    assert trained.stepper("int8") is not trained.stepper("fp32")  # asked for, it is used
