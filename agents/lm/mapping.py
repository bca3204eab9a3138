"""Mapping LM^A's hidden states into LM^V's space from only K paired pieces.

A pair is an audio frame and the score frame being played then (from the piece's alignment). Its two sides are
``h_A(t)``, LM^A's state after the 40 audio frames ending at ``t`` (the agent's "audio" window), and ``h_V(c)``,
LM^V's state at the agent's place in its "score" window at score frame ``c``: each averaged over a few frames
(:data:`POOL_AUDIO`, :data:`POOL_SCORE`) and taken from one block of each LM (:data:`AUDIO_LAYER`, LM^A's last
block, and :data:`SCORE_LAYER`, LM^V's first), both kept in the mapping. Methods:

- ``regression``: a least-squares affine map ``h_A -> h_V`` over the paired frames (the surface alignment).
- ``predictive``: starts from the regression and also asks (a) that LM^V's own next-frame head, applied to the
  mapped state, predict the score frame that follows (the LM's predictive structure), and (b) that mapped audio
  states of the *unpaired* audio pool match LM^V's states on the *unpaired* score pool in mean and covariance.
- ``contrastive``: starts from the regression and trains it with InfoNCE inside each paired piece: a mapped
  audio moment must lie nearer (by cosine, as retrieval measures) to its own score moment's LM^V state than to
  those of the piece's other moments, and the reverse; a small least-squares term keeps it near the regression.
- ``contrastive_mlp``: the same objective over the affine map plus a residual two-layer MLP (``h_A -> 256 ->
  d_V``, its output layer zero at the start, so it starts at the regression), with weight decay: a map that can
  bend, so that more pairs have something to add (at ``small`` the affine maps gain little from K = 8 to 208).

Paired data is read only through :func:`paired_pieces` (exactly ``corpus.paired_ids(K)``); the unpaired pools
serve the distribution term. :func:`retrieval_accuracy` measures a mapping on held-out paired pieces (the last
:data:`HELD_OUT` in budget order, which no budget reaches): for audio moments of a piece, is the nearest mapped
state the right score moment's, among ``candidates`` of that piece? :func:`motion_retrieval_accuracy` asks the
same through h: A -> M (bags of keys, or chord sequences aligned by :func:`end_aligned_distance`),
:func:`piano_distance` the other way (the score played through h's keyboard against the audio heard), and
:func:`retrieval_ceiling` says what a perfect transcription, and the score moment itself, would reach.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from agents.lm import MAPPING_METHODS
from agents.lm.data import (
    AUDIO_CONTEXT,
    SCORE_POSITION,
    audio_frames,
    load_paired,
    pool_ids,
    random_windows,
    score_frames,
    score_window_at,
    window_ending_at,
)
from agents.lm.model import FrameLM, check_layer
from lmm_envs.music import corpus

METHODS = MAPPING_METHODS
RETRIEVAL_VERSION = 3  # 2: held-out pieces last in budget order, ties shared, the sequence comparison; 3: h hears
# each audio window alone (before, h heard the whole piece, so a window's last frame had one frame after it)
HELD_OUT = 20  # the paired pool's last pieces in budget order: in no budget's training pairs (K <= pool - 20)
# A moment's state is LM^A's mean state over the last POOL_AUDIO frames (0.25 s), and LM^V's over the POOL_SCORE
# frames up to the agent's place (0.25 s of nominal time). Chosen on 20 val pieces among spans from 2 to 20 frames
# (contrastive, K = 8, base LMs): 5 and 5 retrieved 0.428 there, the spans used before (10 and 20) 0.195.
POOL_AUDIO = 5
POOL_SCORE = 5
LEGACY_POOL_AUDIO, LEGACY_POOL_SCORE = 10, 20  # what a mapping saved without its pools was fitted with
# The blocks whose states a mapping maps (``FrameLM.hidden``'s ``layer``; None: the LM's output), chosen on the val
# pieces (affine contrastive, K = 8, base LMs, spans 5 / 5, three draws of moments): LM^A's last block before its
# final norm and LM^V's first block 0.538, both LMs' outputs (before) 0.405; "Which blocks to map" in docs/language_models.md.
AUDIO_LAYER = -1
SCORE_LAYER = 1
ONSET_EVENT = 0.3  # the summed rise in key-down probability that makes a frame a chord of a heard sequence
SCORE_EVENT = 0.5  # a score frame is a chord when it holds an onset (its frames are 0/1 per pitch)
TIMING = 0.01  # the weight of the last chords' age gap (per frame) against the chords' distance, for the ceiling
RESIDUAL_HIDDEN = 256  # the width of contrastive_mlp's residual MLP
RESIDUAL_KEYS = ("w1", "b1", "w2", "b2")


def apply_mapping(h_audio: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  residual: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """``h_A @ weight + bias``, plus ``gelu(h_A @ w1 + b1) @ w2 + b2`` where the mapping has a residual MLP."""
    mapped = h_audio @ weight + bias
    if residual:
        hidden = torch.nn.functional.gelu(h_audio @ residual["w1"] + residual["b1"])
        mapped = mapped + hidden @ residual["w2"] + residual["b2"]
    return mapped


@dataclass
class Mapping:
    """``mapped = h_A @ weight + bias`` (``weight`` is ``(d_A, d_V)``), plus a residual MLP where ``residual`` holds
    one (``contrastive_mlp``; see :func:`apply_mapping`); ``center`` is the mean LM^V state of the training pairs,
    removed before comparing states (their shared component would otherwise dominate cosines). ``audio_pool`` and
    ``score_pool``: the frames over which a moment's LM^A and LM^V states are averaged (:func:`audio_states`,
    :func:`score_states`), as the mapping was fitted; a mapping saved before they were recorded used 10 and 20.
    ``audio_layer`` / ``score_layer``: which block's states of each LM it maps (:meth:`FrameLM.hidden`; None, the
    LM's output, for a mapping saved before they were recorded)."""

    weight: torch.Tensor
    bias: torch.Tensor
    center: torch.Tensor
    method: str
    paired_budget: int
    residual: dict[str, torch.Tensor] | None = None
    audio_pool: int = POOL_AUDIO
    score_pool: int = POOL_SCORE
    audio_layer: int | None = None
    score_layer: int | None = None

    def __call__(self, h_audio: torch.Tensor) -> torch.Tensor:
        return apply_mapping(h_audio, self.weight, self.bias, self.residual)

    def to(self, device: str) -> Mapping:
        residual = {k: v.to(device) for k, v in self.residual.items()} if self.residual else None
        return replace(self, weight=self.weight.to(device), bias=self.bias.to(device), center=self.center.to(device),
                       residual=residual)

    def save(self, path) -> None:
        from lmm_envs.files import atomic_path

        blob = {"weight": self.weight.cpu(), "bias": self.bias.cpu(), "center": self.center.cpu(),
                "method": self.method, "paired_budget": self.paired_budget, "audio_pool": self.audio_pool,
                "score_pool": self.score_pool, "audio_layer": self.audio_layer, "score_layer": self.score_layer}
        if self.residual:
            blob["residual"] = {k: v.detach().cpu() for k, v in self.residual.items()}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)

    @classmethod
    def load(cls, path, device: str = "cpu") -> Mapping:
        blob = torch.load(path, map_location=device, weights_only=True)
        return cls(blob["weight"], blob["bias"], blob["center"], blob["method"], int(blob["paired_budget"]),
                   blob.get("residual"), int(blob.get("audio_pool", LEGACY_POOL_AUDIO)),
                   int(blob.get("score_pool", LEGACY_POOL_SCORE)), blob.get("audio_layer"), blob.get("score_layer"))


def paired_pieces(paired_budget: int) -> list[dict]:
    """The K paired pieces, and nothing else of the paired pool."""
    if paired_budget > len(corpus.piece_ids(split="train", pool="paired")) - HELD_OUT:
        raise ValueError(f"paired_budget {paired_budget} leaves no held-out paired pieces for evaluation")
    return [load_paired(pid) for pid in corpus.paired_ids(paired_budget)]


@torch.no_grad()
def _states(lm: FrameLM, windows: np.ndarray, layer: int | None = None) -> torch.Tensor:
    """``lm``'s state (of block ``layer``, or its output) at every frame of each window: ``(N, T, d)``."""
    return lm.hidden(torch.from_numpy(np.ascontiguousarray(windows)).to(next(lm.parameters()).device), layer)


@torch.no_grad()
def audio_states(lm_a: FrameLM, windows: np.ndarray, batch: int = 256, pool: int = POOL_AUDIO,
                 layer: int | None = None) -> torch.Tensor:
    """LM^A's state (block ``layer``'s, or its output) after each audio window ``(N, 40, 75)``, its mean over the
    last ``pool`` frames: ``(N, d_A)``."""
    _check_pool(pool, AUDIO_CONTEXT, "audio_pool")
    out = [_states(lm_a, windows[i:i + batch], layer)[:, -pool:].mean(1) for i in range(0, len(windows), batch)]
    return torch.cat(out)


@torch.no_grad()
def score_states(lm_v: FrameLM, windows: np.ndarray, batch: int = 256, pool: int = POOL_SCORE,
                 layer: int | None = None) -> torch.Tensor:
    """LM^V's state (block ``layer``'s, or its output) at the agent's place in each score window ``(N, 80, 88)``,
    its mean over the ``pool`` frames up to the place: ``(N, d_V)``."""
    _check_pool(pool, SCORE_POSITION + 1, "score_pool")
    out = [_states(lm_v, windows[i:i + batch, :SCORE_POSITION + 1], layer)[:, -pool:].mean(1)
           for i in range(0, len(windows), batch)]
    return torch.cat(out)


def _check_pool(pool: int, most: int, name: str) -> None:
    if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= most:
        raise ValueError(f"{name} must be a whole number of frames from 1 to {most}, got {pool!r}")


def check_pools(audio_pool: int, score_pool: int) -> None:
    """Refuse pooling spans outside the windows (``ValueError``), before any work that would use them."""
    _check_pool(audio_pool, AUDIO_CONTEXT, "audio_pool")
    _check_pool(score_pool, SCORE_POSITION + 1, "score_pool")


def pair_windows(pieces: list[dict], per_piece: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Audio windows, score windows and the next score frame at ``per_piece`` random moments of each piece."""
    audio, score, following = [], [], []
    for p in pieces:
        for t in rng.integers(0, len(p["audio"]), size=per_piece):
            c = int(p["position"][t])
            audio.append(window_ending_at(p["audio"], int(t), AUDIO_CONTEXT))
            score.append(score_window_at(p["score"], c))
            following.append(p["score"][min(c + 1, len(p["score"]) - 1)])
    return np.stack(audio), np.stack(score), np.stack(following)


def affine_ridge(inputs: torch.Tensor, targets: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of the ridge regression ``inputs @ weight + bias ~ targets`` (rows: the same moments),
    the penalty ``ridge`` per row on weight and bias alike, solved in the inputs' dtype."""
    x = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=inputs.dtype, device=inputs.device)], dim=1)
    gram = x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    solution = torch.linalg.solve(gram, x.T @ targets)
    return solution[:-1].clone(), solution[-1].clone()


def fit_mapping(lm_a: FrameLM, lm_v: FrameLM, paired_budget: int, method: str = "regression",
                per_piece: int = 200, steps: int | None = None, unpaired_pieces: int = 40, ridge: float = 1e-3,
                seed: int = 0, audio_pool: int = POOL_AUDIO, score_pool: int = POOL_SCORE,
                audio_layer: int | None = AUDIO_LAYER, score_layer: int | None = SCORE_LAYER) -> Mapping:
    """Fit a mapping from the K paired pieces (see the module docstring for the methods). ``steps`` (Adam steps of
    the methods past the regression) defaults to 300, and to 1000 for ``contrastive_mlp``; ``audio_pool`` and
    ``score_pool`` are the frames a moment's states are averaged over on each side, ``audio_layer`` and
    ``score_layer`` the blocks whose states are mapped (None: the LM's output; ``predictive`` always maps onto
    LM^V's output, which its next-frame head reads); all four are kept in the mapping."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_pools(audio_pool, score_pool)
    check_layer(audio_layer, lm_a.config.n_layers, "audio_layer")
    check_layer(score_layer, lm_v.config.n_layers, "score_layer")
    if method == "predictive":
        score_layer = None  # LM^V's next-frame head reads its output
    rng = np.random.default_rng(seed)
    audio, score, following = pair_windows(paired_pieces(paired_budget), per_piece, rng)
    h_a = audio_states(lm_a, audio, pool=audio_pool, layer=audio_layer)
    h_v = score_states(lm_v, score, pool=score_pool, layer=score_layer)
    weight, bias = affine_ridge(h_a, h_v, ridge)
    center = h_v.mean(0)
    mapping = Mapping(weight, bias, center, method, paired_budget,
                      audio_pool=audio_pool, score_pool=score_pool, audio_layer=audio_layer, score_layer=score_layer)
    if method == "regression":
        return mapping
    if method == "contrastive_mlp":
        return _contrastive_mlp(mapping, h_a, h_v, per_piece, 1000 if steps is None else steps, seed)
    steps = 300 if steps is None else steps
    if method == "contrastive":
        return _contrastive(mapping, h_a, h_v, per_piece, steps)
    # predictive: LM^V's head on the mapped states predicts the following score frame; unpaired moments match
    a_pool = [audio_frames(i) for i in pool_ids("unpaired_audio", unpaired_pieces)]
    v_pool = [score_frames(i) for i in pool_ids("unpaired_score", unpaired_pieces)]
    u_a = audio_states(lm_a, random_windows(a_pool, AUDIO_CONTEXT, 2000, rng), pool=audio_pool, layer=audio_layer)
    u_v = score_states(lm_v, random_windows(v_pool, SCORE_POSITION + 1, 2000, rng), pool=score_pool)
    target_mean, target_cov = u_v.mean(0), torch.cov(u_v.T)
    weight = mapping.weight.clone().requires_grad_(True)
    bias = mapping.bias.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight, bias], lr=1e-3)
    following_t = torch.from_numpy(following).to(h_a.device)
    for _ in range(steps):
        mapped = h_a @ weight + bias
        fit = torch.nn.functional.mse_loss(mapped, h_v)
        predictive = lm_v.next_frame_loss(lm_v.predict(mapped), following_t)
        u_mapped = u_a @ weight + bias
        moments = (u_mapped.mean(0) - target_mean).pow(2).mean() + (torch.cov(u_mapped.T) - target_cov).pow(2).mean()
        loss = fit + 0.1 * predictive + 0.1 * moments
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return replace(mapping, weight=weight.detach(), bias=bias.detach())


def in_piece_info_nce(mapping: Mapping, h_a: torch.Tensor, h_v: torch.Tensor, per_piece: int,
                      temperature: float = 0.1) -> torch.Tensor:
    """The contrastive loss of a mapping over pairs whose rows ``i * per_piece ...`` come from piece ``i``: InfoNCE of
    each mapped audio moment against the LM^V states of its piece's moments, and the reverse, averaged."""
    pieces = len(h_a) // per_piece
    keys = torch.nn.functional.normalize(h_v - mapping.center, dim=1).view(pieces, per_piece, -1)
    queries = torch.nn.functional.normalize(mapping(h_a) - mapping.center, dim=1).view(pieces, per_piece, -1)
    labels = torch.arange(per_piece, device=h_a.device).repeat(pieces)
    forward = (queries @ keys.transpose(1, 2) / temperature).reshape(-1, per_piece)
    reverse = (keys @ queries.transpose(1, 2) / temperature).reshape(-1, per_piece)
    return (torch.nn.functional.cross_entropy(forward, labels) + torch.nn.functional.cross_entropy(reverse, labels)) / 2


def _contrastive(start: Mapping, h_a: torch.Tensor, h_v: torch.Tensor, per_piece: int, steps: int,
                 fit_weight: float = 0.1, lr: float = 1e-3) -> Mapping:
    """From the regression, Adam on :func:`in_piece_info_nce` plus ``fit_weight`` x the least-squares error."""
    params = {"weight": start.weight.clone().requires_grad_(True), "bias": start.bias.clone().requires_grad_(True)}
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    return _descend(start, params, optimizer, "contrastive", h_a, h_v, per_piece, steps, fit_weight)


def _contrastive_mlp(start: Mapping, h_a: torch.Tensor, h_v: torch.Tensor, per_piece: int, steps: int, seed: int,
                     fit_weight: float = 0.1, lr: float = 1e-3, weight_decay: float = 1e-4) -> Mapping:
    """From the regression plus a residual MLP that starts at zero, AdamW on :func:`in_piece_info_nce` plus
    ``fit_weight`` x the least-squares error (full batch)."""
    generator = torch.Generator().manual_seed(seed)
    d_a, d_v = start.weight.shape
    bound = 1 / d_a ** 0.5  # PyTorch's default for a Linear layer, drawn from ``generator``
    params = {
        "weight": start.weight.clone(), "bias": start.bias.clone(),
        "w1": (torch.rand(d_a, RESIDUAL_HIDDEN, generator=generator) * 2 - 1) * bound,
        "b1": (torch.rand(RESIDUAL_HIDDEN, generator=generator) * 2 - 1) * bound,
        "w2": torch.zeros(RESIDUAL_HIDDEN, d_v), "b2": torch.zeros(d_v),
    }
    params = {k: v.to(h_a.device).requires_grad_(True) for k, v in params.items()}
    optimizer = torch.optim.AdamW(params.values(), lr=lr, weight_decay=weight_decay)
    return _descend(start, params, optimizer, "contrastive_mlp", h_a, h_v, per_piece, steps, fit_weight)


def _descend(start: Mapping, params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, method: str,
             h_a: torch.Tensor, h_v: torch.Tensor, per_piece: int, steps: int, fit_weight: float) -> Mapping:
    """``steps`` full-batch steps of ``optimizer`` over ``params`` (``weight``, ``bias`` and, where the map has
    one, the residual MLP's :data:`RESIDUAL_KEYS`) on :func:`in_piece_info_nce` plus ``fit_weight`` x the
    least-squares error; the fitted mapping, detached."""
    def current() -> Mapping:
        residual = {k: params[k] for k in RESIDUAL_KEYS if k in params} or None
        return replace(start, weight=params["weight"], bias=params["bias"], method=method, residual=residual)

    for _ in range(steps):
        mapping = current()
        loss = in_piece_info_nce(mapping, h_a, h_v, per_piece)
        loss = loss + fit_weight * torch.nn.functional.mse_loss(mapping(h_a), h_v)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    done = current()
    residual = {k: v.detach() for k, v in done.residual.items()} if done.residual else None
    return replace(done, weight=done.weight.detach(), bias=done.bias.detach(), residual=residual)


def mapping_name(method: str, paired_budget: int, seed: int | None = None) -> str:
    """The file of a fitted mapping in a folder of ``python -m agents.pretrain`` (``seed`` for the fits past the
    first seed)."""
    return f"mapping_{method}_K{paired_budget}" + (f"_s{seed}" if seed is not None else "") + ".pt"


def held_out_ids() -> list[str]:
    """The retrieval task's pieces: the last :data:`HELD_OUT` of :func:`corpus.paired_ids`'s budget order, so that
    no paired budget a mapping may use (``paired_ids(K)``, K <= pool - HELD_OUT) contains one of them."""
    return corpus.paired_ids()[-HELD_OUT:]


def validation_ids() -> list[str]:
    """:data:`HELD_OUT` pieces of the val split (a fixed draw), on which to choose a mapping's settings (such as
    its pooling spans) without looking at the retrieval task's held-out pieces; no pool of the train split holds
    them."""
    return sorted(np.random.default_rng(1).choice(corpus.piece_ids(split="val"), HELD_OUT, replace=False).tolist())


def retrieval_moments(pid: str, rng: np.random.Generator, candidates: int,
                      synth: str = "harmonic") -> tuple[dict, np.ndarray]:
    """A held-out paired piece (its audio rendered by ``synth``) and the audio frames of its ``candidates``
    retrieval moments (sorted)."""
    p = load_paired(pid, synth=synth)
    times = np.sort(rng.choice(len(p["audio"]), size=min(candidates, len(p["audio"])), replace=False))
    return p, times


def own_share(similarity: torch.Tensor) -> float:
    """Retrieval hits from a (queries, keys) similarity whose diagonal pairs each query with its own key: each query
    counts the share of its nearest keys that is its own (identical moments, a repeated bar, tie, and are told
    apart by chance only)."""
    nearest = similarity >= similarity.max(dim=1, keepdim=True).values - 1e-9
    return float((torch.diagonal(nearest).double() / nearest.sum(dim=1)).sum())


def _cosine(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(queries, keys) cosine similarities, in float64."""
    queries = torch.nn.functional.normalize(queries.double(), dim=1)
    keys = torch.nn.functional.normalize(keys.double(), dim=1)
    return queries @ keys.T


def _hits(queries: torch.Tensor, keys: torch.Tensor) -> float:
    """How many queries (rows) find their own key (same row) nearest by cosine (:func:`own_share`)."""
    return own_share(_cosine(queries, keys))


def _moment_windows(piece: dict, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The audio windows ending at ``times`` and the score windows at the places the alignment gives them."""
    audio = np.stack([window_ending_at(piece["audio"], int(t), AUDIO_CONTEXT) for t in times])
    score = np.stack([score_window_at(piece["score"], int(piece["position"][t])) for t in times])
    return audio, score


@torch.no_grad()
def mapped_similarity(lm_a: FrameLM, lm_v: FrameLM, mapping: Mapping, piece: dict, times: np.ndarray) -> torch.Tensor:
    """The ``pooled`` comparison of :func:`retrieval_accuracy` on one piece: (queries, keys) cosine similarities of
    the mapped, pooled LM^A states of the audio moments ending at ``times`` with LM^V's pooled states of the score
    moments at the places the alignment gives them."""
    audio, score = _moment_windows(piece, times)
    heard = audio_states(lm_a, audio, pool=mapping.audio_pool, layer=mapping.audio_layer)
    read = score_states(lm_v, score, pool=mapping.score_pool, layer=mapping.score_layer)
    return _cosine(mapping(heard) - mapping.center, read - mapping.center)


@torch.no_grad()
def retrieval_accuracy(lm_a: FrameLM, lm_v: FrameLM, mapping: Mapping, piece_ids: list[str] | None = None,
                       candidates: int = 16, seed: int = 0, compare: str = "pooled") -> dict[str, float]:
    """Top-1 retrieval of the score moment for an audio moment, among ``candidates`` moments of the same piece.

    ``compare``: ``pooled`` compares the mapped pooled LM^A state with LM^V's pooled state by cosine (what the
    mappings are fitted on, pooled over the mapping's ``audio_pool`` and ``score_pool`` frames); ``sequence``
    compares the mapped LM^A state of every frame of the audio window with
    LM^V's state at every score frame up to the agent's place, by :func:`end_aligned_distance` over frames (as the
    ``sequence`` comparison through h does over chords), so that the performer's tempo may drop out.
    Returns the accuracy, chance (1 / candidates) and the number of queries.
    """
    if compare not in ("pooled", "sequence"):
        raise ValueError(f"compare must be 'pooled' or 'sequence', got {compare!r}")
    rng = np.random.default_rng(seed)
    hits, total = 0.0, 0
    for pid in piece_ids or held_out_ids():
        p, times = retrieval_moments(pid, rng, candidates)
        if compare == "pooled":
            hits += own_share(mapped_similarity(lm_a, lm_v, mapping, p, times))
        else:
            audio, score = _moment_windows(p, times)
            heard = (mapping(_states(lm_a, audio, mapping.audio_layer)) - mapping.center).cpu().numpy()
            read = (_states(lm_v, score[:, :SCORE_POSITION + 1], mapping.score_layer) - mapping.center).cpu().numpy()
            hits += _sequence_hits(list(heard), list(read))
        total += len(times)
    return {"accuracy": hits / total, "chance": 1.0 / candidates, "queries": total}


def key_onsets(down: np.ndarray) -> np.ndarray:
    """``(T, 88)`` key-down probabilities -> onset strengths: how much each key's probability rose at each frame."""
    return np.maximum(np.diff(down, axis=0, prepend=np.zeros((1, down.shape[1]), down.dtype)), 0.0)


def events(frames: np.ndarray, threshold: float = ONSET_EVENT) -> np.ndarray:
    """The frames of ``(T, 88)`` onset strengths (or a score's onsets) whose total exceeds ``threshold``, in order:
    a sequence of chords with the time between them dropped, so two performances of a passage at different tempi
    give the same sequence."""
    return frames[frames.sum(axis=1) > threshold]


def end_aligned_distance(query: np.ndarray, key: np.ndarray) -> float:
    """Dynamic time warping of every chord of ``key`` onto the end of ``query`` (both sequences end now; the query
    may start anywhere, as its window holds more time than the key's): the mean cosine distance along the path that
    each step extends from the predecessor of lowest mean distance. 1 when either sequence is empty."""
    if len(query) == 0 or len(key) == 0:
        return 1.0

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)

    cost = 1.0 - unit(key.astype(np.float64)) @ unit(query.astype(np.float64)).T  # (key chords, query chords)
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    length = np.zeros((rows + 1, cols + 1))
    total[0, :] = 0.0  # the key's first chord may meet any of the query's
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            steps = ((total[i - 1, j - 1], length[i - 1, j - 1]), (total[i - 1, j], length[i - 1, j]),
                     (total[i, j - 1], length[i, j - 1]))
            best, steps_so_far = min(steps, key=lambda s: s[0] / max(s[1], 1.0))  # the lowest mean so far
            total[i, j] = best + cost[i - 1, j - 1]
            length[i, j] = steps_so_far + 1
    return float(total[rows, cols] / length[rows, cols])


def _read_windows(score: np.ndarray, places: list[int]) -> list[np.ndarray]:
    """The agent's score window up to each place (``SCORE_POSITION`` frames before it and the place itself)."""
    return [score[max(0, c - SCORE_POSITION):c + 1] for c in places]


def _heard_windows(frames: np.ndarray, times: np.ndarray) -> list[np.ndarray]:
    """The agent's audio window ending at each time (``AUDIO_CONTEXT`` frames, fewer at the start), of any per-frame
    array in performance time: the audio, or a transcription of it."""
    return [frames[max(0, int(t) - AUDIO_CONTEXT + 1):int(t) + 1] for t in times]


def _score_moments(score: np.ndarray, places: list[int], span: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The score side of both comparisons at the agent's places: onsets summed over the ``span`` frames up to each
    place (bags), and the chords of the agent's score window up to it (sequences)."""
    bags = np.stack([score[max(0, c - span + 1):c + 1].sum(0) for c in places])
    chords = [events(read, SCORE_EVENT) for read in _read_windows(score, places)]
    return bags, chords


def _sequence_distance(queries: list[np.ndarray], keys: list[np.ndarray]) -> torch.Tensor:
    """(queries, keys) :func:`end_aligned_distance` of event sequences."""
    return torch.tensor([[end_aligned_distance(q, k) for k in keys] for q in queries], dtype=torch.float64)


def last_event_age(frames: np.ndarray, threshold: float) -> int:
    """How many frames ago the last event of ``frames`` (a frame whose total exceeds ``threshold``, as
    :func:`events` counts them) was: 0 when the last frame is one, ``len(frames)`` when none is. The one thing a
    chord sequence drops that tells two moments inside the same held chord apart."""
    at = np.flatnonzero(frames.sum(axis=1) > threshold)
    return int(len(frames) - 1 - at[-1]) if len(at) else len(frames)


def age_gaps(heard: list[np.ndarray], read: list[np.ndarray], heard_threshold: float = ONSET_EVENT,
             read_threshold: float = SCORE_EVENT) -> torch.Tensor:
    """(queries, keys): how far apart, in frames, the :func:`last_event_age` of each heard window and of each read
    score window are (audio frames against score frames: equal at the score's own tempo)."""
    heard_age = torch.tensor([last_event_age(q, heard_threshold) for q in heard], dtype=torch.float64)
    read_age = torch.tensor([last_event_age(k, read_threshold) for k in read], dtype=torch.float64)
    return (heard_age[:, None] - read_age[None, :]).abs()


def timed_similarity(distance: torch.Tensor, age_gap: torch.Tensor, timing: float) -> torch.Tensor:
    """(queries, keys) similarities from chord sequences' distances and the gaps between their last chords' ages
    (in frames): ``-(distance + timing * age_gap)``; ``timing`` 0 is the tempo-free comparison alone."""
    if timing < 0:
        raise ValueError(f"timing must be >= 0, got {timing}")
    return -(distance + timing * age_gap)


def _sequence_hits(queries: list[np.ndarray], keys: list[np.ndarray]) -> float:
    """:func:`_hits` for event sequences compared by :func:`end_aligned_distance`."""
    return own_share(-_sequence_distance(queries, keys))


def _pixels(piece: dict) -> np.ndarray:
    """The piece's audio frames as the env's uint8 pixels (what h and the agents hear)."""
    return np.rint(piece["audio"] * 255.0).astype(np.uint8)


def heard_down(h, pixels: np.ndarray, end: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """h's key-down probabilities for the ``frames`` audio frames up to ``end`` and the onsets in them
    (:func:`key_onsets`), ``(<= frames, 88)`` each, as h hears them at ``end``: from those frames and the one
    before them alone, nothing after ``end`` (h reads a frame's neighbours on both sides; the window's last frame
    gets silence after it, as it would live)."""
    start = max(0, end - frames + 1)
    _, down = h.transcribe(pixels[max(0, start - 1):end + 1])
    onsets = key_onsets(down)
    if start > 0:  # the frame before the window: its context and its key-downs' rise into the window's first
        down, onsets = down[1:], onsets[1:]
    return down, onsets


@torch.no_grad()
def motion_terms(h, piece: dict, times: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of :func:`motion_similarity` on one piece, (queries, keys) each: the end-aligned distances
    between the chords ``h`` hears start in the audio windows ending at ``times`` and the chords of the score
    windows up to their places, and how far apart the ages of each side's last chord are (:func:`age_gaps`)."""
    places = [int(piece["position"][t]) for t in times]
    _, chords = _score_moments(piece["score"], places, POOL_SCORE)
    pixels = _pixels(piece)
    heard = [heard_down(h, pixels, int(t), AUDIO_CONTEXT)[1] for t in times]
    distance = _sequence_distance([events(q) for q in heard], chords)
    return distance, age_gaps(heard, _read_windows(piece["score"], places))


def motion_similarity(h, piece: dict, times: np.ndarray, timing: float = 0.0) -> torch.Tensor:
    """The ``sequence`` comparison of :func:`motion_retrieval_accuracy` on one piece: (queries, keys) similarities
    of the chords ``h`` hears start in the audio windows ending at ``times`` with the chords of the score windows
    up to their places, and with ``timing`` > 0 also of how long ago each side's last chord began
    (:func:`motion_terms`, :func:`timed_similarity`)."""
    return timed_similarity(*motion_terms(h, piece, times), timing)


def piano_distance(keyboard, piece: dict, times: np.ndarray) -> torch.Tensor:
    """(queries, keys): the score played through a piano against what was heard, the direction M -> A. Each key
    is the agent's score window up to its place, each frame's sounding keys mixed by the ``keyboard`` (each key's
    spectrum, ``(88, bins)`` in linear units: an h's ``basis``, the mix matrix h decodes with, when given an h;
    or one fitted on pairs, :mod:`agents.lm.keyboard_fit`) into a log spectrum; each query the audio window ending
    at its moment, in the same log units; the two sequences compared by :func:`end_aligned_distance`, frame by
    frame (tempo drops out as in the chord comparison, but nothing is transcribed). With h's keyboard it needs no
    pairs and no training: it knows only what each key sounds like."""
    from agents.lm.transcription import linear_frames
    from lmm_envs.audio.keyboard import to_log

    heard_log = to_log(linear_frames(_pixels(piece)))
    basis = keyboard.basis.detach().cpu().numpy() if hasattr(keyboard, "basis") else np.asarray(keyboard)
    sounding = piece["sounding"].astype(np.float32)
    played = [to_log(window @ basis) for window in _read_windows(sounding, [int(piece["position"][t]) for t in times])]
    return _sequence_distance(_heard_windows(heard_log, times), played)


@torch.no_grad()
def motion_retrieval_accuracy(h, piece_ids: list[str] | None = None, candidates: int = 16, seed: int = 0,
                              span: int = POOL_SCORE, compare: str = "bag", timing: float = 0.0) -> dict[str, float]:
    """The same retrieval (same pieces, same moments) through motion, ``h`` a
    :class:`~agents.lm.transcription.KeyNet` (``python -m agents.hear`` trains them). Two comparisons:

    - ``bag``: an audio moment is h's key-down probabilities summed over its last ``span`` frames, a score moment
      the score's onsets summed over the ``span`` frames up to the agent's place (keys and pitches are one space),
      compared by cosine;
    - ``sequence``: an audio moment is the sequence of chords h hears start in the agent's audio window
      (:func:`key_onsets`, :func:`events`), a score moment the chords of the agent's score window up to its place,
      compared by :func:`end_aligned_distance` (tempo drops out: a bag of the last second holds more or fewer notes
      as the performer is slower or faster); ``timing`` > 0 adds how long ago each side's last chord began
      (:func:`timed_similarity`), which tells apart two moments inside the same held chord.
    """
    if compare not in ("bag", "sequence"):
        raise ValueError(f"compare must be 'bag' or 'sequence', got {compare!r}")
    rng = np.random.default_rng(seed)
    hits, total = 0.0, 0
    for pid in piece_ids or held_out_ids():
        p, times = retrieval_moments(pid, rng, candidates)
        if compare == "bag":
            pixels = _pixels(p)
            bags, _ = _score_moments(p["score"], [int(p["position"][t]) for t in times], span)
            queries = np.stack([heard_down(h, pixels, int(t), span)[0].sum(0) for t in times])
            hits += _hits(torch.from_numpy(queries), torch.from_numpy(bags))
        else:
            hits += own_share(motion_similarity(h, p, times, timing))
        total += len(times)
    return {"accuracy": hits / total, "chance": 1.0 / candidates, "queries": total}


def retrieval_ceiling(piece_ids: list[str] | None = None, candidates: int = 16, seed: int = 0,
                      span: int = POOL_SCORE, timing: float = TIMING) -> dict[str, float]:
    """What the retrieval task allows through motion (same pieces and moments), with a perfect transcription:

    - ``score_itself``: each score moment (onsets over ``span`` frames up to the agent's place) against itself;
      only repeats in the music keep it below 1;
    - ``notes_played``: the notes the performance played in the audio moment's last ``span`` frames (from the
      alignment) against the score moments, as bags (the ``bag`` comparison with a perfect h);
    - ``notes_played_sequence``: the chords played in the agent's audio window against the score window's, by
      :func:`end_aligned_distance` (the ``sequence`` comparison with a perfect h);
    - ``notes_played_sequence_timed``: the same with ``timing`` (:func:`timed_similarity`), the age of the last
      chord counted in the performance's frames on the audio side;
    - ``score_window_itself``: the agent's score window up to its place (``SCORE_POSITION + 1`` frames, every
      onset where it falls) against itself, exactly: the most any comparison that reads the score up to the
      agent's place can tell apart.
    """
    rng = np.random.default_rng(seed)
    itself, played, sequence, timed, window, total = 0.0, 0.0, 0.0, 0.0, 0.0, 0
    for pid in piece_ids or held_out_ids():
        p, times = retrieval_moments(pid, rng, candidates)
        position, score = p["position"], p["score"]
        places = [int(position[t]) for t in times]
        bags, chords = _score_moments(score, places, span)
        keys = torch.from_numpy(bags)
        heard = torch.from_numpy(np.stack([score[np.unique(position[max(0, int(t) - span + 1):int(t) + 1])].sum(0)
                                           for t in times]))
        itself += _hits(keys, keys)
        played += _hits(heard, keys)
        window_start = [int(position[int(t) - AUDIO_CONTEXT]) + 1 if t >= AUDIO_CONTEXT else 0 for t in times]
        distance = _sequence_distance([events(score[a:c + 1], SCORE_EVENT)
                                       for a, c in zip(window_start, places, strict=True)], chords)
        sequence += own_share(-distance)
        performed = performed_onsets(score, position)
        gaps = age_gaps(_heard_windows(performed, times), _read_windows(score, places), SCORE_EVENT, SCORE_EVENT)
        timed += own_share(timed_similarity(distance, gaps, timing))
        exact = torch.from_numpy(np.stack([score_window_at(score, c)[:SCORE_POSITION + 1].ravel() for c in places]))
        window += own_share(-torch.cdist(exact.double(), exact.double(), p=1))
        total += len(times)
    return {"score_itself": itself / total, "notes_played": played / total,
            "notes_played_sequence": sequence / total, "notes_played_sequence_timed": timed / total,
            "score_window_itself": window / total, "timing": timing, "queries": total}


def performed_onsets(score: np.ndarray, position: np.ndarray) -> np.ndarray:
    """A perfect transcription in performance time: ``(audio frames, 88)``, each score frame's onsets at the audio
    frame whose aligned place first reaches it."""
    out = np.zeros((len(position), score.shape[1]), dtype=np.float32)
    reached = -1
    for u, c in enumerate(position):
        if c > reached:
            out[u] = np.minimum(score[reached + 1:c + 1].sum(0), 1.0)
            reached = int(c)
    return out


@torch.no_grad()
def transcription_retrieval(lm_v: FrameLM, spans: tuple[int, ...] = (5, 10, 20), piece_ids: list[str] | None = None,
                            candidates: int = 16, seed: int = 0, layer: int | None = None) -> dict[int, float]:
    """The retrieval task (same pieces and moments) between LM^V reading a perfect transcription of the performance
    (:func:`performed_onsets`, in performance time, up to the audio moment) and LM^V reading the score (up to the
    agent's place), each state (of block ``layer``, or LM^V's output) averaged over the last ``span`` frames: per
    span, what a mapping onto LM^V's pooled states could reach if it heard every note, with the performer's timing
    left in."""
    rng = np.random.default_rng(seed)
    hits, total = dict.fromkeys(spans, 0.0), 0
    for pid in piece_ids or held_out_ids():
        p, times = retrieval_moments(pid, rng, candidates)
        played = performed_onsets(p["score"], p["position"])
        read = _states(lm_v, np.stack([score_window_at(p["score"], int(p["position"][t]))[:SCORE_POSITION + 1]
                                       for t in times]), layer)
        heard = _states(lm_v, np.stack([score_window_at(played, int(t))[:SCORE_POSITION + 1] for t in times]), layer)
        for span in spans:
            keys = read[:, -span:].mean(1)
            center = keys.mean(0)
            hits[span] += _hits(heard[:, -span:].mean(1) - center, keys - center)
        total += len(times)
    return {span: hits[span] / total for span in spans}
