"""Red-team round, checkpoints: a hostile SB3 zip must never run code unless the user trusts it.

The payloads are the ones that got through before: a protocol-4 ``STACK_GLOBAL`` with a dotted name reaching
``os.system`` through an allowlisted module, names starting with ``_``, and the plain ``os.system`` / ``eval``
references. A fuzz test feeds generated opcode streams and checks that nothing outside the exact allowlist is
ever resolved, and nothing is ever called.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zipfile

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmm_envs  # noqa: F401
from lmm_envs.benchmark import checkpoints
from lmm_envs.benchmark.checkpoints import ALLOWED_CLASSES, load_sb3_agent, resolve_global, safe_policy_kwargs
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids

PIECES = piece_ids(split="test")[:1]


def _text(s: str) -> bytes:
    return b"\x8c" + bytes([len(s)]) + s.encode()  # SHORT_BINUNICODE


def call_payload(module: str, name: str, argument: str) -> bytes:
    """A pickle that resolves ``module``/``name`` with STACK_GLOBAL and calls it with ``argument`` (REDUCE)."""
    return b"\x80\x04" + _text(module) + _text(name) + b"\x93" + _text(argument) + b"\x85R."


def reference_payload(module: str, name: str) -> bytes:
    """``{"features_extractor_class": module.name}``: resolves a global without calling anything."""
    return b"\x80\x04}" + _text("features_extractor_class") + _text(module) + _text(name) + b"\x93s."


def _serialized(blob: bytes) -> dict:
    return {":serialized:": base64.b64encode(blob).decode()}


@pytest.fixture(scope="module")
def saved_ppo(tmp_path_factory):
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    path = tmp_path_factory.mktemp("ckpt") / "ppo.zip"
    model.save(path)
    return path


def rewrite(src, dst, data_change=None, replace: dict | None = None):
    """Copy an SB3 zip, changing its ``data`` JSON with ``data_change`` and replacing whole entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            if item.filename == "data" and data_change is not None:
                data = json.loads(content)
                data_change(data)
                content = json.dumps(data).encode()
            if replace and item.filename in replace:
                content = replace[item.filename]
            zout.writestr(item.filename, content)
    return dst


KNOWN_BYPASSES = [
    ("torch.optim.optimizer", "torch.os.system"),  # module on the old allowlist, dotted name out of it
    ("agents.features", "torch.os.system"),
    ("torch.nn.modules.activation", "torch.os.system"),
    ("torch.nn.modules.activation", "F.torch.os.system"),
    ("torch.optim", "_functional.torch.os.system"),
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("builtins", "getattr"),
    ("subprocess", "getoutput"),
]


@pytest.mark.parametrize("module,name", KNOWN_BYPASSES)
def test_known_payloads_run_nothing_and_are_refused(saved_ppo, tmp_path, module, name):
    marker = tmp_path / "pwned"
    evil = rewrite(saved_ppo, tmp_path / "evil.zip",
                   lambda d: d.update(policy_kwargs=_serialized(call_payload(module, name, f"touch {marker}"))))
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    with pytest.raises(ConfigError, match="allowlist"):
        load_sb3_agent(evil, env)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", KNOWN_BYPASSES)
def test_a_reference_outside_the_exact_pairs_is_refused_even_without_a_call(module, name):
    assert safe_policy_kwargs(_serialized(reference_payload(module, name))) is None
    with pytest.raises(pickle.UnpicklingError):
        resolve_global(module, name)


def test_a_stream_that_calls_even_an_allowlisted_class_is_refused_before_anything_is_resolved(monkeypatch):
    seen = []
    monkeypatch.setattr(checkpoints, "resolve_global", lambda m, n: seen.append((m, n)))
    for payload in (call_payload("torch.nn.modules.activation", "ReLU", "x"),
                    b"\x80\x04" + _text("builtins") + _text("set") + b"\x93)\x81."):  # NEWOBJ
        assert safe_policy_kwargs(_serialized(payload)) is None
    assert seen == []


def test_the_cli_refuses_the_dotted_name_payload_without_running_it(saved_ppo, tmp_path):
    marker = tmp_path / "pwned"
    payload = call_payload("torch.optim.optimizer", "torch.os.system", f"touch {marker}")
    evil = rewrite(saved_ppo, tmp_path / "evil.zip", lambda d: d.update(policy_kwargs=_serialized(payload)))
    run = subprocess.run([sys.executable, "-m", "lmm_envs.cli", "evaluate", "--agent", str(evil), "--limit", "1",
                          "--quiet"], capture_output=True, text=True)
    assert run.returncode == 2 and "allowlist" in run.stderr and "Traceback" not in run.stderr
    assert not marker.exists()


def test_the_networks_sb3_writes_load_without_trust(tmp_path):
    import torch
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    kwargs = {"activation_fn": torch.nn.Tanh, "optimizer_class": torch.optim.AdamW,
              "net_arch": {"pi": [32], "vf": [32]}, "optimizer_kwargs": {"eps": 1e-5}}
    PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, device="cpu", policy_kwargs=kwargs).save(tmp_path / "a.zip")
    agent = load_sb3_agent(tmp_path / "a.zip", env)
    assert isinstance(agent.model.policy.optimizer, torch.optim.AdamW)
    assert any(isinstance(m, torch.nn.Tanh) for m in agent.model.policy.modules())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("change,replace,message", [
    (None, {"policy.pth": b"\x80\x04garbage that is not a torch file"}, "cannot load"),
    (lambda d: d.update(policy_kwargs={"features_extractor_class": "os.system"}), None, "cannot load"),
    (lambda d: d.update(policy_kwargs=_serialized(b"not a pickle at all")), None, "allowlist"),
])
def test_damaged_checkpoints_are_one_config_error(saved_ppo, tmp_path, change, replace, message):
    path = rewrite(saved_ppo, tmp_path / "bad.zip", change, replace)
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    with pytest.raises(ConfigError, match=message) as err:
        load_sb3_agent(path, env)
    assert "\n" not in str(err.value)


def test_a_deeply_nested_data_entry_is_one_config_error(saved_ppo, tmp_path):
    path = tmp_path / "nested.zip"
    with zipfile.ZipFile(saved_ppo) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            if item.filename == "data":
                content = content[:-1] + b', "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            zout.writestr(item.filename, content)
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_sb3_agent(path, env)


MODULES = ["os", "posix", "builtins", "subprocess", "torch", "torch.optim", "torch.optim.optimizer", "torch.optim.adam",
           "agents.features", "torch.nn.modules.activation", "copyreg", "functools", "collections", "torch.os",
           "stable_baselines3.common.torch_layers", "x.y", "_private"]
ATTRS = ["system", "eval", "exec", "getattr", "__import__", "Popen", "torch.os.system", "features.torch.os.system",
         "_private", "RawExtractor", "LMMExtractor", "ReLU", "Tanh", "Adam", "set", "dict", "OrderedDict", "partial",
         "_reconstructor", "NatureCNN", "F.torch.os.system"]
OPCODES = [b"\x93", b"R", b"b", b"\x81", b"\x92", b"(", b"t", b"\x85", b"\x86", b"\x87", b"}", b"s", b"u", b"]",
           b"a", b"e", b"N", b"\x88", b"\x89", b"0", b"1", b"2", b"\x8f", b"\x90", b"\x91", b"\x94", b"h\x00", b"h\x01",
           b"o", b"Q", b"P0\n", b"\x82\x01", b"l", b"d", b")", b"K\x07", b"G" + b"\x00" * 8]


def _ops():
    pair = st.tuples(st.sampled_from(MODULES), st.sampled_from(ATTRS))
    return st.lists(st.one_of(
        pair.map(lambda mn: _text(mn[0]) + _text(mn[1]) + b"\x93"),  # STACK_GLOBAL
        pair.map(lambda mn: b"c" + mn[0].encode() + b"\n" + mn[1].encode() + b"\n"),  # GLOBAL
        pair.map(lambda mn: b"(i" + mn[0].encode() + b"\n" + mn[1].encode() + b"\n"),  # INST
        st.sampled_from(MODULES + ATTRS).map(_text),
        st.sampled_from(OPCODES),
        st.binary(max_size=3),
    ), max_size=24)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops(), protocol=st.sampled_from([b"\x80\x02", b"\x80\x04", b"\x80\x05", b""]))
def test_fuzzed_streams_never_resolve_anything_off_the_list_nor_call_it(monkeypatch, ops, protocol):
    resolved = []
    original = checkpoints.resolve_global

    def recording(module, name):
        found = original(module, name)
        resolved.append((module, name))
        return found

    def forbidden(*args, **kwargs):
        raise AssertionError(f"called with {args}")

    monkeypatch.setattr(checkpoints, "resolve_global", recording)
    monkeypatch.setattr(os, "system", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    value = safe_policy_kwargs(_serialized(protocol + b"".join(ops) + b"."))
    assert value is None or isinstance(value, dict)
    assert all(pair in ALLOWED_CLASSES for pair in resolved)
