"""SB3 features extractors for the lmm envs' Dict observations.

- :class:`RawExtractor` (``--features raw``): a small CNN per image window (``"audio"``, ``"score"``,
  ``"target"``), the other keys flattened, all concatenated into a trainable linear layer.
- :class:`MatchExtractor` (``--features match``): a learned comparison of the last audio frames with every score
  column of the window (where does what was just heard sit in the score?), read by an MLP.
- :class:`LMMExtractor` (``--features lmm``): the agent hears through the language models. Audio windows go
  through the frozen LM^A and the few-pair mapping into LM^V's space; score windows through the frozen LM^V; the
  other keys are flattened; a small trainable head combines them. Built from a folder written by
  ``python -m agents.pretrain`` (``lm_dir``), for one mapping (``method``, ``paired_budget``).

SB3 scales uint8 image windows to [0, 1] before an extractor sees them, which is the scale the LMs were trained on
(audio pixels / 255; score onsets are the pixels at 255).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents.lm.data import AUDIO_CONTEXT, SCORE_POSITION
from agents.lm.mapping import Mapping, apply_mapping, mapping_name
from agents.lm.model import FrameLM
from lmm_envs.audio.features import N_BINS
from lmm_envs.errors import ConfigError

N_PITCHES = 88
FINGERPRINT = "frozen_fingerprint"  # the state-dict key that stands for frozen networks left out of a checkpoint


def _is_window(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == "uint8"


def _flat_size(space: gym.Space) -> int:
    return int(gym.spaces.flatdim(space))


class RawExtractor(BaseFeaturesExtractor):
    """A small CNN over each observation window, the rest flattened, then one trainable layer.

    The two convolutions (stride 2 each) keep a map of the window at a quarter of its resolution, which the
    layer reads whole: no global pooling, because where a note is matters (which key to press, whether the
    performance is ahead of or behind the agent's place). Pooling the map down to 4 x 4 cells of about 22
    pitches x 1 s had left PPO unable to learn either.

    ``channels_last`` (the default) keeps the convolutions' weights in channels-last memory layout: the same
    network and parameters, whose forward and backward run faster on the CPU's oneDNN kernels than in the default
    layout (``benchmarks/train_throughput.py --update-profile``); ``False`` is the layout before.
    """

    def __init__(self, observation_space: gym.spaces.Dict, features_dim: int = 128, channels_last: bool = True):
        super().__init__(observation_space, features_dim)
        self.channels_last = channels_last
        self.branches = nn.ModuleDict()
        total = 0
        for key, space in observation_space.spaces.items():
            if _is_window(space):
                branch = nn.Sequential(
                    nn.Conv2d(space.shape[0], 16, kernel_size=5, stride=2, padding=2), nn.ReLU(),
                    nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
                with torch.no_grad():
                    total += branch(torch.zeros(1, *space.shape)).shape[1]
                self.branches[key] = branch
            else:
                self.branches[key] = nn.Flatten()
                total += _flat_size(space)
        self.head = nn.Sequential(nn.Linear(total, features_dim), nn.ReLU())
        self._set_layout()

    def _set_layout(self) -> None:
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        self.branches.to(memory_format=layout)  # moves the 4-D weights only; the Parameters stay the same objects

    def apply(self, fn):
        """``Module.apply`` on weights in the default layout: SB3 initialises them orthogonally through it, and
        ``nn.init.orthogonal_`` needs a weight it can view as a matrix; the layout is restored afterwards."""
        self.branches.to(memory_format=torch.contiguous_format)
        super().apply(fn)
        self._set_layout()
        return self

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [branch(observations[key].float()) for key, branch in self.branches.items()]
        return self.head(torch.cat(parts, dim=1))


class PretrainedParts:
    """For an extractor that holds frozen pretrained networks (the attributes named in ``frozen``).

    SB3's actor-critic policies initialise every Linear layer of the features extractor orthogonally, through
    ``Module.apply``, after the extractor is built; that would erase a pretrained network. Here ``apply`` reaches
    only the trainable parts, and the frozen ones stay in eval mode whatever ``train`` is asked.
    """

    frozen: tuple[str, ...] = ()
    cache_states: int = 0
    save_frozen: bool = True  # False: the frozen networks are left out of the saved state (see ``state_dict``)
    frozen_source: str = ""  # where the constructor loads the frozen networks from, for error messages
    _fingerprint: torch.Tensor | None = None  # frozen_fingerprint's, until the frozen networks may have changed

    def _start_cache(self, cache_states: int) -> None:
        """Keep the frozen parts' output for the last ``cache_states`` distinct states seen (0: none): PPO runs the
        policy over each rollout's states once to act and again in every epoch of its update, and the frozen
        parts' share of that work is then done once. A state is known by a hash of its observation's bytes. Rows
        computed in a batch of another size may differ from the uncached output in the last bits, so it is an
        option (``--features-arg cache_states=4096``) rather than the default. An extractor whose frozen work
        splits into parts that each read some windows only (:meth:`cached_parts`) keeps one cache per part, each
        of ``cache_states`` entries."""
        if int(cache_states) < 0:
            raise ConfigError(f"cache_states must be 0 (no cache) or a number of states, got {cache_states}")
        self.cache_states = int(cache_states)
        self._caches: list[OrderedDict[bytes, tuple[torch.Tensor, ...]]] = []
        self._cache_single = True
        self.cache_counts: list[list[int]] = []  # per part: [states looked up, states encoded]

    def _clear_cache(self) -> None:
        """Forget what was computed from the frozen networks (their outputs, their fingerprint): they may change."""
        for cache in getattr(self, "_caches", []):
            cache.clear()
        self._fingerprint = None

    @property
    def cached_states(self) -> list[int]:
        """How many entries each part's cache holds now."""
        return [len(cache) for cache in self._caches]

    def cached_parts(self) -> list[tuple[tuple[str, ...] | None, Callable]]:
        """The frozen work as independent parts ``(observation keys, encode)``, cached apart: a part's output
        depends on its keys alone, so a new state whose score window was seen before (the follower still on the
        same columns) reuses that part. By default one part, :meth:`encode_frozen` over every key."""
        return [(None, self.encode_frozen)]

    def _apply(self, fn, *args, **kwargs):  # .to(device), .float(), ...: cached outputs are of the module before
        self._clear_cache()
        return super()._apply(fn, *args, **kwargs)

    def frozen_fingerprint(self) -> torch.Tensor:
        """A 128-bit hash of the frozen networks' weights (names and bytes), as 16 uint8 values."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)
            for name in self.frozen:
                for key, value in sorted(getattr(self, name).state_dict().items()):
                    digest.update(key.encode())
                    digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = torch.tensor(list(digest.digest()), dtype=torch.uint8)
        return self._fingerprint

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """The module's state; with ``save_frozen = False`` the frozen networks are replaced by their fingerprint
        (``frozen_fingerprint``). The constructor loads them from their folder anyway, so a checkpoint then holds
        the trained parts alone (a ``base`` ``lmm`` PPO checkpoint: 3.3 MB, Adam's state included, against about
        10 MB with both LMs), and loading it checks that the folder holds the networks it was trained with."""
        out = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        if not self.save_frozen:
            for name in self.frozen:
                for key in [k for k in out if k.startswith(f"{prefix}{name}.")]:
                    del out[key]
            out[prefix + FINGERPRINT] = self.frozen_fingerprint().clone()
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # new weights, perhaps new frozen networks
        self._clear_cache()
        saved = state_dict.pop(prefix + FINGERPRINT, None)
        if saved is not None:  # the frozen networks were left out when saved: those already loaded stand for them
            if not torch.equal(saved.to(torch.uint8).cpu(), self.frozen_fingerprint()):
                raise ConfigError(f"this checkpoint was trained with other frozen networks ({', '.join(self.frozen)}) "
                                  f"than those loaded from {self.frozen_source or 'their folder'}; load it with the "
                                  "folder it was trained with")
            for name in self.frozen:
                for key, value in getattr(self, name).state_dict(keep_vars=True).items():
                    state_dict.setdefault(f"{prefix}{name}.{key}", value)
        return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def encode_frozen(self, observations: dict[str, torch.Tensor]):
        """What the frozen networks make of a batch (a tensor or a tuple of tensors, batch first), computed without
        gradients: it depends on the observations alone, so a warm start computes it once per state and reuses it
        in every epoch (:mod:`agents.imitation`)."""
        raise NotImplementedError

    def forward_encoded(self, encoded, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """The features from :meth:`encode_frozen`'s output and the same observations (the trainable parts)."""
        raise NotImplementedError

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        encoded = self._encode_cached(observations) if self.cache_states else self.encode_frozen(observations)
        return self.forward_encoded(encoded, observations)

    def _encode_cached(self, observations: dict[str, torch.Tensor]):
        """:meth:`encode_frozen` through the caches: each part encodes only the states whose windows it has not
        seen (in one batch)."""
        parts = self.cached_parts()
        if len(self._caches) != len(parts):
            self._caches = [OrderedDict() for _ in parts]
            self.cache_counts = [[0, 0] for _ in parts]
        if len(parts) == 1:
            encoded = self._through(0, observations, parts[0][1])
            return encoded[0] if self._cache_single else encoded
        return tuple(self._through(p, {k: observations[k] for k in keys}, encode)[0]
                     for p, (keys, encode) in enumerate(parts))

    def _through(self, part: int, observations: dict[str, torch.Tensor], encode: Callable):
        """``encode(observations)`` as a tuple of tensors, computed for the states not in part ``part``'s cache
        only."""
        cache = self._caches[part]
        keys = _state_keys(observations)
        missing = list({key: i for i, key in enumerate(keys) if key not in cache}.values())
        self.cache_counts[part][0] += len(keys)
        self.cache_counts[part][1] += len(missing)
        if missing:
            rows = torch.as_tensor(missing, device=next(iter(observations.values())).device)
            out = encode({k: v[rows] for k, v in observations.items()})
            self._cache_single = not isinstance(out, tuple)
            parts = (out,) if self._cache_single else out
            for j, i in enumerate(missing):
                cache[keys[i]] = tuple(part[j].clone() for part in parts)
        for key in keys:
            cache.move_to_end(key)
        encoded = tuple(torch.stack(column) for column in zip(*(cache[key] for key in keys), strict=True))
        while len(cache) > self.cache_states:
            cache.popitem(last=False)
        return encoded

    def apply(self, fn):
        for name, child in self.named_children():
            if name not in self.frozen:
                child.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self


def _state_keys(observations: dict[str, torch.Tensor]) -> list[bytes]:
    """One key per state of a batch: a 128-bit hash of its observation's bytes, every key of the dict in order."""
    rows = [v.detach().cpu().contiguous().reshape(v.shape[0], -1).numpy() for v in observations.values()]
    keys = []
    for i in range(rows[0].shape[0]):
        digest = hashlib.blake2b(digest_size=16)
        for array in rows:
            digest.update(array[i])
        keys.append(digest.digest())
    return keys


def _trailing_mean(x: torch.Tensor, width: int) -> torch.Tensor:
    """The mean of ``x`` ``(B, T, D)`` over the ``width`` steps up to each step (fewer at the start): ``(B, T, D)``."""
    total = x.cumsum(dim=1)
    before = nn.functional.pad(total, (0, 0, width, 0))[:, :x.shape[1]]  # the running sum ``width`` steps earlier
    counts = torch.arange(1, x.shape[1] + 1, device=x.device).clamp(max=width).to(x.dtype)
    return (total - before) / counts[:, None]


class LMMExtractor(PretrainedParts, BaseFeaturesExtractor):
    """Frozen LM^A -> mapping, frozen LM^V, and a trainable head (see the module docstring).

    ``readout="pooled"`` (the default) pools each audio context into one mapped state and the score window into
    two (here and ahead). ``readout="match"`` (ScoreFollowing, Accompaniment) keeps where things are: each of the
    last ``frames`` audio frames' mapped state (LM^A's mean over the mapping's ``audio_pool`` frames up to it) is
    compared by cosine with LM^V's state at every score column (its mean over the mapping's ``score_pool`` columns
    up to it), plus a learned correction gated from 0, and an MLP reads the ``(frames, columns)`` map: ``match``'s
    comparison, with both sides in the language models' space and the few-pair mapping between them. Both readouts
    take each LM's states from the block the mapping was fitted on (its ``audio_layer`` and ``score_layer``).
    """

    frozen = ("lm_a", "lm_v")
    save_frozen = False  # both LMs are loaded from ``lm_dir``; a checkpoint keeps their fingerprint

    def __init__(self, observation_space: gym.spaces.Dict, lm_dir: str = "runs/lm", method: str = "regression",
                 paired_budget: int = 8, features_dim: int = 128, readout: str = "pooled", frames: int = 8,
                 cache_states: int = 0):
        if readout not in ("pooled", "match"):
            raise ConfigError(f"readout must be 'pooled' or 'match', got {readout!r}")
        spaces = observation_space.spaces
        if readout == "match" and not all(k in spaces and _is_window(spaces[k]) for k in ("audio", "score")):
            raise ConfigError("--features lmm with readout=match needs 'audio' and 'score' windows in the "
                              "observation (lmm/ScoreFollowing-v0, lmm/Accompaniment-v0)")
        super().__init__(observation_space, features_dim)
        self._start_cache(cache_states)
        self.readout = readout
        folder = Path(lm_dir)
        self.frozen_source = str(folder)
        mapping_path = folder / mapping_name(method, paired_budget)
        for path in (folder / "lm_a.pt", folder / "lm_v.pt", mapping_path):
            if not path.is_file():
                raise ConfigError(f"{path} not found; make it with python -m agents.pretrain --out {folder} "
                                  f"--paired-budget {paired_budget} --method {method}")
        self.lm_a = FrameLM.load(folder / "lm_a.pt")
        self.lm_v = FrameLM.load(folder / "lm_v.pt")
        for lm in (self.lm_a, self.lm_v):
            lm.requires_grad_(False)
        mapping = Mapping.load(mapping_path)
        self.register_buffer("map_weight", mapping.weight)
        self.register_buffer("map_bias", mapping.bias)
        self.register_buffer("map_center", mapping.center)
        self.audio_pool, self.score_pool = mapping.audio_pool, mapping.score_pool  # as the mapping was fitted
        self.audio_layer, self.score_layer = mapping.audio_layer, mapping.score_layer
        self.map_residual_keys = tuple(mapping.residual) if mapping.residual else ()
        for key in self.map_residual_keys:  # contrastive_mlp's residual MLP
            self.register_buffer(f"map_{key}", mapping.residual[key])
        d_v = self.lm_v.config.d_model
        self.kinds: dict[str, str] = {}
        total = 0
        for key, space in observation_space.spaces.items():
            if _is_window(space) and space.shape[1] == N_BINS:
                self.kinds[key] = "audio"
                total += d_v * max(space.shape[2] // AUDIO_CONTEXT, 1)
            elif _is_window(space) and space.shape[1] == N_PITCHES:
                self.kinds[key] = "score"
                total += 2 * d_v
            else:
                self.kinds[key] = "flat"
                total += _flat_size(space)
        if readout == "match":
            self.frames = min(int(frames), spaces["audio"].shape[2])
            self.project = nn.Linear(d_v, d_v)
            self.gate = nn.Parameter(torch.tensor(0.0))
            size = self.frames * spaces["score"].shape[2] + sum(
                _flat_size(space) for key, space in spaces.items() if self.kinds[key] == "flat")
            self.head = nn.Sequential(nn.Linear(size, 256), nn.ReLU(), nn.Linear(256, features_dim), nn.ReLU())
        else:
            self.head = nn.Sequential(nn.Linear(total, features_dim), nn.ReLU())

    def match_map(self, audio: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """The ``(B, frames, columns)`` cosine map of mapped audio states against score states (``readout="match"``),
        from windows scaled to [0, 1]."""
        return self._compare(*self._match_states(audio, score))

    def _match_states(self, audio: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen half of :meth:`match_map`: the mapped audio states ``(B, frames, d_V)`` and the score states
        ``(B, columns, d_V)``."""
        return self._heard_mapped(audio), self._score_read(score)

    def _heard_mapped(self, audio: torch.Tensor) -> torch.Tensor:
        """The last ``frames`` audio frames' LM^A states, pooled and mapped into LM^V's space: ``(B, frames, d_V)``."""
        with torch.no_grad():
            frames = audio[:, 0].transpose(1, 2)[:, -AUDIO_CONTEXT:]  # (B, W, bins)
            heard = _trailing_mean(self.lm_a.hidden(frames, self.audio_layer), self.audio_pool)[:, -self.frames:]
            return self._mapped(heard)

    def _score_read(self, score: torch.Tensor) -> torch.Tensor:
        """LM^V's state at every score column, pooled and centred: ``(B, columns, d_V)``."""
        with torch.no_grad():
            return _trailing_mean(self.lm_v.hidden(self._onsets(score), self.score_layer) - self.map_center,
                                  self.score_pool)

    def cached_parts(self) -> list[tuple[tuple[str, ...] | None, Callable]]:
        """``readout="match"``: the audio and the score halves apart (in PPO's first 4096 steps on 8 pieces LM^V
        ran on 1268 states, LM^A on 3315, both on 4082 with one entry per state); ``"pooled"``: one part."""
        if self.readout != "match":
            return super().cached_parts()
        return [(("audio",), lambda obs: self._heard_mapped(obs["audio"].float())),
                (("score",), lambda obs: self._score_read(obs["score"].float()))]

    def _compare(self, mapped: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        """The trainable half of :meth:`match_map`: the cosine map with the learned, gated correction."""
        expected = read + self.gate * self.project(read)
        return nn.functional.normalize(mapped, dim=-1) @ nn.functional.normalize(expected, dim=-1).transpose(1, 2)

    def _mapped(self, audio_states: torch.Tensor) -> torch.Tensor:
        """LM^A states into LM^V's space through the few-pair mapping, centred as LM^V's states are."""
        residual = {key: getattr(self, f"map_{key}") for key in self.map_residual_keys}
        return apply_mapping(audio_states, self.map_weight, self.map_bias, residual) - self.map_center

    @staticmethod
    def _onsets(score: torch.Tensor) -> torch.Tensor:
        """The onsets of all channels of a score window ``(B, C, 88, columns)``, as LM^V reads them: ``(B, columns,
        88)``."""
        return (score.amax(dim=1) >= 0.99).float().transpose(1, 2)

    def _audio(self, x: torch.Tensor) -> torch.Tensor:
        frames = x[:, 0].transpose(1, 2)  # (B, W, 75)
        chunks = max(frames.shape[1] // AUDIO_CONTEXT, 1)
        out = []
        for c in range(chunks):
            seq = frames[:, c * AUDIO_CONTEXT:(c + 1) * AUDIO_CONTEXT]
            state = self.lm_a.hidden(seq, self.audio_layer)[:, -self.audio_pool:].mean(1)
            out.append(self._mapped(state))
        return torch.cat(out, dim=1)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.lm_v.hidden(self._onsets(x), self.score_layer) - self.map_center
        here = hidden[:, max(SCORE_POSITION + 1 - self.score_pool, 0):SCORE_POSITION + 1].mean(1)
        return torch.cat([here, hidden[:, SCORE_POSITION + 1:].mean(1)], dim=1)

    def encode_frozen(self, observations: dict[str, torch.Tensor]):
        """``readout="match"``: the mapped audio and the score states; ``"pooled"``: the pooled, mapped states of
        every window, concatenated."""
        if self.readout == "match":
            return self._match_states(observations["audio"].float(), observations["score"].float())
        parts = []
        with torch.no_grad():
            for key, kind in self.kinds.items():
                if kind == "audio":
                    parts.append(self._audio(observations[key].float()))
                elif kind == "score":
                    parts.append(self._score(observations[key].float()))
        return torch.cat(parts, dim=1)

    def forward_encoded(self, encoded, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        flat = [observations[key].float().flatten(1) for key, kind in self.kinds.items() if kind == "flat"]
        if self.readout == "match":
            return self.head(torch.cat([self._compare(*encoded).flatten(1), *flat], dim=1))
        return self.head(torch.cat([encoded, *flat], dim=1))


class MatchExtractor(BaseFeaturesExtractor):
    """What a follower needs to see: where in the score window the music just heard matches.

    A trainable linear map turns each score column (88 pitches, all channels) into a spectrum (the audio window's
    bins); the cosine similarity of each of the last ``frames`` audio frames with each score column gives a
    ``(frames, score columns)`` match map, which an MLP reads together with the other (flat) keys. Everything is
    learned, from the map to the read-out; the architecture only says *compare what you hear with what you read*,
    the comparison an online-DTW follower makes by hand. For Dict observations with an ``"audio"`` and a
    ``"score"`` window (ScoreFollowing, Accompaniment).
    """

    def __init__(self, observation_space: gym.spaces.Dict, frames: int = 8, features_dim: int = 128,
                 init: str = "synth"):
        super().__init__(observation_space, features_dim)
        spaces = observation_space.spaces
        if not all(k in spaces and _is_window(spaces[k]) for k in ("audio", "score")):
            raise ConfigError("--features match needs 'audio' and 'score' windows in the observation "
                              "(lmm/ScoreFollowing-v0, lmm/Accompaniment-v0)")
        self.frames = min(int(frames), spaces["audio"].shape[2] - self._frames_before)
        channels, pitches, columns = spaces["score"].shape
        # score column -> what it should sound like, in the space audio frames are heard in: a fixed start (each
        # key's spectrum through the built-in synth, or nothing) plus a learned correction, gated from 0 (SB3
        # re-initialises every Linear orthogonally)
        if init == "synth":
            start = self._start(channels, pitches)
        elif init == "random":
            start = torch.zeros(self._heard_size(spaces["audio"]), self._column_size(channels, pitches))
        else:
            raise ConfigError(f"init must be 'synth' or 'random', got {init!r}")
        self.register_buffer("start", start)
        self.project = nn.Linear(start.shape[1], start.shape[0])
        self.gate = nn.Parameter(torch.tensor(0.0 if init == "synth" else 1.0))
        self.flat = [k for k in spaces if k not in ("audio", "score")]
        size = self.frames * columns + sum(_flat_size(spaces[k]) for k in self.flat)
        self.head = nn.Sequential(nn.Linear(size, 256), nn.ReLU(), nn.Linear(256, features_dim), nn.ReLU())

    _frames_before = 0  # audio frames before the compared ones that hearing a frame needs

    def _heard_size(self, audio_space: gym.Space) -> int:
        """The size of one heard frame: the audio window's bins."""
        return int(audio_space.shape[1])

    def _column_size(self, channels: int, pitches: int) -> int:
        """The size of one score column as :meth:`_columns` gives it."""
        return channels * pitches

    def _start(self, channels: int, pitches: int) -> torch.Tensor:
        """The fixed map from a column to its expected sound, ``(heard size, column size)``: each channel's keys
        through :meth:`_expected`, the channels averaged."""
        return self._expected(pitches).T.repeat(1, channels) / channels

    def _columns(self, score: torch.Tensor) -> torch.Tensor:
        """The score window ``(B, C, pitches, columns)`` as one vector a column: ``(B, columns, C * pitches)``."""
        return score.permute(0, 3, 1, 2).flatten(2)

    def _expected(self, pitches: int) -> torch.Tensor:
        """Each key's log spectrum through the built-in synth, unit-normalised: ``(pitches, bins)``."""
        from lmm_envs.audio.keyboard import make_keyboard, to_log

        spectra = torch.as_tensor(to_log(make_keyboard("harmonic").mean_spectrum()), dtype=torch.float32)
        return nn.functional.normalize(spectra[:pitches], dim=1)

    def _heard(self, audio: torch.Tensor) -> torch.Tensor:
        """The last ``frames`` frames of the audio window ``(B, 1, bins, W)`` as heard: ``(B, frames, bins)``."""
        return audio[:, 0, :, -self.frames:].transpose(1, 2)

    def match_map(self, audio: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """The ``(B, frames, columns)`` cosine map of the last heard frames against every expected score column,
        from windows scaled to [0, 1] (as SB3 hands them over)."""
        return self._compare(self._heard(audio), score)

    def _compare(self, heard: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """The map from the heard frames ``(B, frames, heard size)`` and the score window."""
        columns = self._columns(score)  # (B, columns, column size)
        expected = columns @ self.start.T + self.gate * self.project(columns)  # (B, columns, heard size)
        return nn.functional.normalize(heard, dim=-1) @ nn.functional.normalize(expected, dim=-1).transpose(1, 2)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._read(self.match_map(observations["audio"].float(), observations["score"].float()), observations)

    def _read(self, match: torch.Tensor, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head over the match map and the flat keys."""
        parts = [match.flatten(1)] + [observations[k].float().flatten(1) for k in self.flat]
        return self.head(torch.cat(parts, dim=1))


class HearExtractor(PretrainedParts, MatchExtractor):
    """The same comparison, with the audio heard through h: A -> M (``--features hear``).

    Each of the last ``frames`` audio frames goes through a frozen :class:`agents.lm.transcription.KeyNet` (learned
    from the unpaired audio through the differentiable piano and calibrated on the K pairs, ``python -m
    agents.hear``) into the probability that each of the 88 keys is down: the audio mapped into the score's own
    symbols. A score column's expected sound starts as its keys themselves (identity) plus a learned correction.
    Against ``match``, which compares raw spectra, this is the suite's claim in one switch: does the few-pair
    mapped representation make a follower learn from 8 pairs?

    With ``onsets`` each heard frame also carries the rise of every key's probability since the frame before, and
    each score column which of its keys start there (pixel 255) beside which sound (any pixel): h says which keys
    are down, and a follower places itself by where they went down. Off by default: at 8 pairs and 100k steps it
    followed no better (0.382 [0.318, 0.446] normalised against 0.387 [0.337, 0.438] without, docs/learning.md).
    """

    frozen = ("h",)

    def encode_frozen(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """The heard frames (:meth:`_heard`)."""
        return self._heard(observations["audio"].float())

    def forward_encoded(self, encoded: torch.Tensor, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._read(self._compare(encoded, observations["score"].float()), observations)

    def __init__(self, observation_space: gym.spaces.Dict, h_model: str, frames: int = 8, features_dim: int = 128,
                 onsets: bool = False, cache_states: int = 0):
        from agents.lm.transcription import KeyNet

        path = Path(h_model)
        if not path.is_file():
            raise ConfigError(f"{path} not found; make it with python -m agents.hear (its h_abs_K<K>_s<seed>.pt "
                              "files), or name another with --h-model")
        self.onsets = bool(onsets)
        super().__init__(observation_space, frames=frames, features_dim=features_dim, init="synth")
        self._start_cache(cache_states)
        self.h = KeyNet.load(path).requires_grad_(False)  # frozen; its weights travel in the policy's state

    @property
    def _frames_before(self) -> int:
        return int(self.onsets)  # the rise of a frame needs the frame before it

    def _heard_size(self, audio_space: gym.Space) -> int:
        return N_PITCHES * (1 + self.onsets)

    def _column_size(self, channels: int, pitches: int) -> int:
        return channels * pitches * (1 + self.onsets)

    def _expected(self, pitches: int) -> torch.Tensor:
        return torch.eye(pitches)

    def _start(self, channels: int, pitches: int) -> torch.Tensor:
        keys = super()._start(channels, pitches)  # (88, C * 88): a column's keys, channels averaged
        return torch.block_diag(keys, keys) if self.onsets else keys

    def _columns(self, score: torch.Tensor) -> torch.Tensor:
        columns = super()._columns(score)
        if not self.onsets:
            return columns
        return torch.cat([(columns > 0).float(), (columns >= 255).float()], dim=2)  # sounding, starting

    def _heard(self, audio: torch.Tensor) -> torch.Tensor:
        """Key-down probabilities ``(B, frames, 88)`` of the last ``frames`` frames (:meth:`KeyNet.hear_last`),
        with ``onsets`` their rise since the frame before beside them: ``(B, frames, 176)``."""
        with torch.no_grad():
            down = self.h.hear_last(audio[:, 0].transpose(1, 2), self.frames + self._frames_before)
        if not self.onsets:
            return down
        return torch.cat([down[:, 1:], (down[:, 1:] - down[:, :-1]).clamp(min=0.0)], dim=2)


EXTRACTORS = {"raw": RawExtractor, "lmm": LMMExtractor, "match": MatchExtractor, "hear": HearExtractor}
