import gymnasium as gym
import numpy as np
import pytest
import torch

import lmm_envs  # noqa: F401
from agents.features import HearExtractor, LMMExtractor, RawExtractor
from agents.lm.data import AUDIO_CONTEXT, SCORE_POSITION
from agents.lm.model import FrameLM
from agents.lm.transcription import KeyNet, KeyNetConfig
from agents.pretrain import pretrain
from lmm_envs.errors import ConfigError
from lmm_envs.music.corpus import piece_ids, piece_info

ENV_IDS = sorted(k for k in gym.registry if k.startswith("lmm/"))
PIECES = (sorted(piece_ids(split="test", collection="bach"), key=lambda p: piece_info(p).seconds)[:1]
          + sorted((p for p in piece_ids(split="test") if piece_info(p).monophonic), key=lambda p: piece_info(p).seconds)[:1])


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    pretrain(out, size="tiny", lm_steps=10, budgets=(2,), methods=("regression",), pool_limit=3, progress=False, probe=False)
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_lmm_extractor_trains_with_ppo_on_every_env(env_id, lm_dir):
    from stable_baselines3 import PPO

    env = gym.make(env_id, pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32}}
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=kwargs, device="cpu",
                seed=0)
    frozen = {k: v.clone() for k, v in model.policy.features_extractor.lm_a.state_dict().items()}
    model.learn(64)
    after = model.policy.features_extractor.lm_a.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # the LMs stay frozen


def test_a_policy_keeps_the_pretrained_lms_it_was_given(lm_dir):
    """SB3 initialises every Linear layer of a features extractor orthogonally when it builds a policy; the
    pretrained LMs must come through that as they were saved, or the agent hears through random networks."""
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32}}
    extractor = PPO("MultiInputPolicy", env, n_steps=32, policy_kwargs=kwargs, device="cpu", seed=0).policy.features_extractor
    for name in ("lm_a", "lm_v"):
        saved = FrameLM.load(lm_dir / f"{name}.pt").state_dict()
        kept = getattr(extractor, name).state_dict()
        assert all(torch.equal(saved[k], kept[k]) for k in saved), name
    assert not extractor.lm_a.training


def test_lmm_features_map_through_the_mlp_mapping_as_it_was_fitted(lm_dir):
    """With ``--mapping contrastive_mlp`` the features extractor applies the residual MLP the mapping file holds,
    and SB3's initialisation of a new policy leaves it as saved."""
    from stable_baselines3 import PPO

    from agents.lm.mapping import Mapping, fit_mapping

    lm_a, lm_v = FrameLM.load(lm_dir / "lm_a.pt"), FrameLM.load(lm_dir / "lm_v.pt")
    mapping = fit_mapping(lm_a, lm_v, paired_budget=2, method="contrastive_mlp", per_piece=20, steps=20)
    mapping.save(lm_dir / "mapping_contrastive_mlp_K2.pt")
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32,
                                            "method": "contrastive_mlp"}}
    extractor = PPO("MultiInputPolicy", env, n_steps=32, policy_kwargs=kwargs, device="cpu", seed=0).policy.features_extractor
    states = torch.randn(5, lm_a.config.d_model)
    saved = Mapping.load(lm_dir / "mapping_contrastive_mlp_K2.pt")
    assert torch.allclose(extractor._mapped(states), saved(states) - saved.center, atol=1e-6)
    assert not torch.allclose(extractor._mapped(states), states @ saved.weight + saved.bias - saved.center)


def test_lmm_match_readout_compares_the_states_the_mapping_was_fitted_on(lm_dir):
    """With ``readout="match"``, the map's cell for the last audio frame and the agent's place in the score is the
    cosine of exactly the two states the pooled readout hands its head (the mapping's own inputs); the map then
    trains with PPO, the LMs frozen."""
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    common = {"lm_dir": str(lm_dir), "paired_budget": 2}
    pooled = LMMExtractor(env.observation_space, **common)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {**common, "readout": "match", "frames": 4}}
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=kwargs, device="cpu",
                seed=0)
    matcher = model.policy.features_extractor
    obs, _ = env.reset(seed=0)
    for _ in range(60):
        obs, *_ = env.step(1)
    audio, score = (torch.as_tensor(obs[k][None]).float() / 255.0 for k in ("audio", "score"))
    match = matcher.match_map(audio, score)
    assert match.shape == (1, 4, score.shape[-1])
    with torch.no_grad():
        heard, here = pooled._audio(audio), pooled._score(score)[:, :pooled.lm_v.config.d_model]
    expected = torch.nn.functional.cosine_similarity(heard, here)[0]
    assert torch.allclose(match[0, -1, SCORE_POSITION], expected, atol=1e-5)
    frozen = {k: v.clone() for k, v in matcher.lm_v.state_dict().items()}
    model.learn(32)
    assert all(torch.equal(frozen[k], v) for k, v in matcher.lm_v.state_dict().items())
    with pytest.raises(ConfigError, match="readout"):
        LMMExtractor(env.observation_space, **common, readout="nearest")
    with pytest.raises(ConfigError, match="needs 'audio' and 'score'"):
        LMMExtractor(gym.make("lmm/PlayByEar-v0").observation_space, **common, readout="match")


def test_lmm_features_read_the_frames_and_layers_their_mapping_was_fitted_on(lm_dir, tmp_path):
    """A mapping fitted with other pooling spans and layers is read with them: both readouts average LM^A's states
    (of the mapping's ``audio_layer``) over its ``audio_pool`` frames and LM^V's (of its ``score_layer``) over its
    ``score_pool`` frames up to the agent's place."""
    import shutil

    from agents.lm.mapping import fit_mapping

    for name in ("lm_a.pt", "lm_v.pt"):
        shutil.copy(lm_dir / name, tmp_path / name)
    lm_a, lm_v = FrameLM.load(lm_dir / "lm_a.pt"), FrameLM.load(lm_dir / "lm_v.pt")
    mapping = fit_mapping(lm_a, lm_v, paired_budget=2, per_piece=20, audio_pool=3, score_pool=5, audio_layer=0,
                          score_layer=1)
    mapping.save(tmp_path / "mapping_regression_K2.pt")
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    common = {"lm_dir": str(tmp_path), "paired_budget": 2}
    pooled = LMMExtractor(env.observation_space, **common)
    matcher = LMMExtractor(env.observation_space, **common, readout="match", frames=4)
    assert (pooled.audio_pool, pooled.score_pool, pooled.audio_layer, pooled.score_layer) == (3, 5, 0, 1)
    obs, _ = env.reset(seed=0)
    for _ in range(60):
        obs, *_ = env.step(1)
    audio, score = (torch.as_tensor(obs[k][None]).float() / 255.0 for k in ("audio", "score"))
    with torch.no_grad():
        frames = audio[:, 0].transpose(1, 2)[:, -AUDIO_CONTEXT:]
        heard = mapping(lm_a.hidden(frames, 0)[:, -3:].mean(1)) - mapping.center
        states = lm_v.hidden(LMMExtractor._onsets(score), 1) - mapping.center
        here = states[:, SCORE_POSITION - 4:SCORE_POSITION + 1].mean(1)
        assert torch.allclose(pooled._audio(audio)[:, :heard.shape[1]], heard, atol=1e-5)
        assert torch.allclose(pooled._score(score)[:, :here.shape[1]], here, atol=1e-5)
        cell = matcher.match_map(audio, score)[0, -1, SCORE_POSITION]
    assert torch.allclose(cell, torch.nn.functional.cosine_similarity(heard, here)[0], atol=1e-5)


@pytest.mark.parametrize("readout", ["pooled", "match"])
def test_cached_frozen_outputs_give_the_same_features_and_encode_only_states_not_seen(lm_dir, readout,
                                                                                       monkeypatch):
    """``cache_states``: PPO's epochs see each rollout state again; the frozen LMs run once per distinct state,
    the cache keeps the last ``cache_states`` of them, and the features are those without it."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.preprocessing import preprocess_obs

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    env.observation_space.seed(0)
    common = {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32, "readout": readout}
    cached, plain = (PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=2, device="cpu", seed=0,
                         policy_kwargs={"features_extractor_class": LMMExtractor,
                                        "features_extractor_kwargs": {**common, "cache_states": size}}).policy
                     for size in (24, 0))

    def batch(n: int) -> dict[str, torch.Tensor]:
        obs = {k: np.stack([env.observation_space[k].sample() for _ in range(n)]) for k in env.observation_space}
        return preprocess_obs(cached.obs_to_tensor(obs)[0], cached.observation_space)

    encoded = []  # the states the frozen LMs ran on (the score half's, for the match readout: here every sampled
    part = "encode_frozen" if readout == "pooled" else "_score_read"  # state has its own audio and score windows)
    original = getattr(LMMExtractor, part)
    monkeypatch.setattr(LMMExtractor, part, lambda self, obs: encoded.append(
        len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)) or original(self, obs))
    first = batch(10)
    first_twice = {k: torch.cat([v, v]) for k, v in first.items()}  # a state twice in one batch: encoded once
    extractor = cached.features_extractor
    with torch.no_grad():
        features = extractor(first_twice)
        assert encoded == [10] and torch.allclose(features[:10], features[10:])
        assert torch.allclose(features[:10], plain.features_extractor(first), atol=1e-5)
        again = extractor(first)  # the plain extractor encoded once; this one, nothing
        assert torch.allclose(again, features[:10], atol=1e-6) and encoded == [10, 10]
        mixed = {k: torch.cat([v[:5], w]) for (k, v), w in zip(first.items(), batch(6).values(), strict=True)}
        extractor(mixed)
        assert encoded[-1] == 6 and set(extractor.cached_states) == {16}
        extractor(batch(20))
        assert set(extractor.cached_states) == {24}  # the oldest evicted
        extractor.to("cpu")
        assert set(extractor.cached_states) == {0}
    PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=2, device="cpu", seed=0,
        policy_kwargs={"features_extractor_class": LMMExtractor,
                       "features_extractor_kwargs": {**common, "cache_states": 64}}).learn(32)
    with pytest.raises(ConfigError, match="cache_states"):
        LMMExtractor(env.observation_space, lm_dir=str(lm_dir), paired_budget=2, cache_states=-1)


@pytest.fixture(scope="module")
def h_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("h") / "h.pt"
    KeyNet(KeyNetConfig(hidden=32, refine_steps=5)).save(path)
    return path


def test_hear_extractor_hears_the_window_as_h_transcribes_it_and_keeps_h(h_model):
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    kwargs = {"features_extractor_class": HearExtractor,
              "features_extractor_kwargs": {"h_model": str(h_model), "onsets": True}}
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=kwargs, device="cpu",
                seed=0)
    extractor = model.policy.features_extractor
    saved = KeyNet.load(h_model).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in extractor.h.state_dict().items())  # not re-initialised
    obs, _ = env.reset(seed=0)
    for _ in range(60):  # into the piece, where the window holds sound
        obs, *_ = env.step(1)
    window = torch.as_tensor(obs["audio"][None]).float() / 255.0
    heard = extractor._heard(window)[0].numpy()
    _, probabilities = KeyNet.load(h_model).transcribe(obs["audio"][0].T)  # every frame of the window, numpy path
    down, rise = heard[:, :88], heard[:, 88:]
    np.testing.assert_allclose(down, probabilities[-extractor.frames:], atol=1e-5)
    np.testing.assert_allclose(rise, np.diff(probabilities[-extractor.frames - 1:], axis=0).clip(0), atol=1e-5)
    model.learn(32)
    assert all(torch.equal(saved[k], v) for k, v in extractor.h.state_dict().items())  # frozen while learning
    assert extractor(model.policy.obs_to_tensor(obs)[0]).shape == (1, 128)


@pytest.mark.parametrize("onsets", [True, False])
def test_hear_extractor_places_a_key_going_down_at_its_onset_column(h_model, onsets):
    """A frame where key 60 has just gone down matches the score column where it starts (pixel 255) better than
    one where it only sounds on (128), and a frame where it is held matches the sounding column better; without
    ``onsets`` the two columns look alike, as they did before onsets were heard."""
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    extractor = HearExtractor(env.observation_space, h_model=str(h_model), onsets=onsets)
    score = torch.zeros(1, 1, 88, 2)
    score[0, 0, 60] = torch.tensor([255.0, 128.0])  # column 0: key 60 starts; column 1: it sounds on
    expected = torch.nn.functional.normalize(extractor._columns(score) @ extractor.start.T, dim=-1)[0]
    going_down, held = torch.zeros(2, 88 * (1 + onsets))
    going_down[60] = held[60] = 1.0
    if onsets:
        going_down[88 + 60] = 1.0  # its probability rose since the frame before
    start_match, on_match = expected @ going_down, expected @ held
    if onsets:
        assert start_match[0] > start_match[1] and on_match[1] > on_match[0]
    else:
        assert torch.allclose(start_match[0], start_match[1]) and torch.allclose(on_match[0], on_match[1])


def test_hear_extractor_without_h_says_how_to_make_it(tmp_path):
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    with pytest.raises(ConfigError, match="agents.hear"):
        HearExtractor(env.observation_space, h_model=str(tmp_path / "none.pt"))


def test_saved_agent_reloads_and_gives_the_same_actions(lm_dir, tmp_path):
    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32}}
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=kwargs, device="cpu")
    model.learn(32)
    model.save(tmp_path / "agent.zip")
    again = PPO.load(tmp_path / "agent.zip", device="cpu")
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        a, _ = model.predict(obs, deterministic=True)
        b, _ = again.predict(obs, deterministic=True)
        assert np.array_equal(a, b)
        obs, *_ = env.step(a)


def test_an_lmm_checkpoint_leaves_its_lms_in_their_folder_and_checks_it_was_given_the_same(lm_dir, tmp_path):
    """A saved ``lmm`` agent holds its trained parts and the LMs' fingerprint, not the LMs (which the constructor
    loads from ``lm_dir`` anyway: about 10 MB a checkpoint with base LMs); it reloads into the same actions, and
    against another LM folder it refuses with one clear error rather than acting through networks it never saw."""
    import shutil

    from stable_baselines3 import PPO

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    kwargs = {"features_extractor_class": LMMExtractor,
              "features_extractor_kwargs": {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32}}
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=kwargs, device="cpu")
    model.learn(32)
    state = model.policy.state_dict()
    assert not any(".lm_a." in k or ".lm_v." in k for k in state)
    assert "features_extractor.frozen_fingerprint" in state
    lm_bytes = sum(v.numel() * v.element_size() for v in model.policy.features_extractor.lm_a.state_dict().values())
    model.save(tmp_path / "agent.zip")
    model.policy.features_extractor.save_frozen = True  # as the checkpoints made before: the LMs inside
    model.save(tmp_path / "full.zip")
    del model.policy.features_extractor.save_frozen
    assert (tmp_path / "full.zip").stat().st_size - (tmp_path / "agent.zip").stat().st_size > lm_bytes / 2
    obs, _ = env.reset(seed=0)
    for path in ("agent.zip", "full.zip"):  # the slim checkpoint, and one that carries its LMs, act the same
        again = PPO.load(tmp_path / path, device="cpu")
        assert np.array_equal(model.predict(obs, deterministic=True)[0], again.predict(obs, deterministic=True)[0])

    other = tmp_path / "other_lms"
    shutil.copytree(lm_dir, other)
    lm = FrameLM.load(other / "lm_a.pt")
    with torch.no_grad():
        next(lm.parameters()).add_(0.01)
    lm.save(other / "lm_a.pt")
    elsewhere = {"policy_kwargs": {**kwargs, "features_extractor_kwargs": {
        **kwargs["features_extractor_kwargs"], "lm_dir": str(other)}}}
    with pytest.raises(ConfigError, match="other frozen networks"):
        PPO.load(tmp_path / "agent.zip", device="cpu", custom_objects=elsewhere)
    carried = PPO.load(tmp_path / "full.zip", device="cpu", custom_objects=elsewhere)  # its own LMs replace the folder's
    assert torch.equal(next(carried.policy.features_extractor.lm_a.parameters()),
                       next(model.policy.features_extractor.lm_a.parameters()))
    assert np.array_equal(model.predict(obs, deterministic=True)[0], carried.predict(obs, deterministic=True)[0])


def test_raw_extractor_handles_every_observation_space():
    for env_id in ENV_IDS:
        env = gym.make(env_id, pieces=PIECES)
        extractor = RawExtractor(env.observation_space, features_dim=16)
        obs, _ = env.reset(seed=0)
        batch = {k: torch.as_tensor(np.asarray(v)[None]).float() / (255.0 if v.dtype == np.uint8 else 1.0)
                 for k, v in obs.items()}
        assert extractor(batch).shape == (1, 16)


def test_missing_pretrained_folder_says_how_to_make_it(tmp_path):
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    with pytest.raises(ConfigError, match="agents.pretrain"):
        LMMExtractor(env.observation_space, lm_dir=str(tmp_path / "none"))


def _one_note_windows(rng: np.random.Generator, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Score windows holding one onset, at the agent's place (column 20), at one of 24 pitches: the label."""
    pitch = torch.as_tensor(rng.integers(0, 24, n))
    score = torch.zeros(n, 1, 88, 80)
    score[torch.arange(n), 0, 30 + pitch, 20] = 1.0
    return {"score": score}, pitch


def test_raw_extractor_keeps_which_pitch_is_at_the_agents_place():
    """What a player needs from the score: which note is here. A linear read-out of the raw features learns it."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    space = gym.spaces.Dict({"score": gym.spaces.Box(0, 255, (1, 88, 80), np.uint8)})
    extractor = RawExtractor(space, features_dim=64)
    readout = torch.nn.Linear(64, 24)
    optimizer = torch.optim.Adam([*extractor.parameters(), *readout.parameters()], lr=3e-3)
    for _ in range(150):
        x, y = _one_note_windows(rng, 64)
        loss = torch.nn.functional.cross_entropy(readout(extractor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = _one_note_windows(rng, 500)
    with torch.no_grad():
        accuracy = (readout(extractor(x)).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9  # chance is 1/24; pooling the map to 4 x 4 cells had left 0.51


def _raw_ppo(channels_last: bool, env):
    from stable_baselines3 import PPO

    return PPO("MultiInputPolicy", env, seed=0, n_steps=64, batch_size=32, n_epochs=1, device="cpu",
               policy_kwargs={"features_extractor_class": RawExtractor, "net_arch": [16],
                              "features_extractor_kwargs": {"channels_last": channels_last}})


def test_raw_extractor_in_channels_last_layout_is_the_same_network(tmp_path):
    """The faster memory layout changes how the convolutions' weights are stored, not the agent: SB3's orthogonal
    initialisation gives the same weights for the same seed, the features agree, and a saved agent loads as it was."""
    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    fast, before = _raw_ppo(True, env), _raw_ppo(False, env)
    fast_conv = fast.policy.features_extractor.branches["score"][2].weight
    assert fast_conv.is_contiguous(memory_format=torch.channels_last)
    assert before.policy.features_extractor.branches["score"][2].weight.is_contiguous()
    for (name, a), (_, b) in zip(fast.policy.state_dict().items(), before.policy.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    assert any(p is fast_conv for group in fast.policy.optimizer.param_groups for p in group["params"])
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(np.asarray(v)[None]).float() / (255.0 if v.dtype == np.uint8 else 1.0)
             for k, v in obs.items()}
    with torch.no_grad():
        assert torch.allclose(fast.policy.features_extractor(batch), before.policy.features_extractor(batch),
                              atol=1e-5)
    fast.learn(64)
    fast.save(tmp_path / "agent.zip")
    from stable_baselines3 import PPO

    again = PPO.load(tmp_path / "agent.zip", device="cpu")
    assert again.policy.features_extractor.branches["score"][2].weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(20):
        a, _ = fast.predict(obs, deterministic=True)
        assert np.array_equal(a, again.predict(obs, deterministic=True)[0])
        obs, *_ = env.step(a)


def test_the_match_readout_caches_its_audio_and_score_halves_apart(lm_dir, monkeypatch):
    """A follower stays on the same score columns for several frames and comes back to them in later episodes:
    a new state whose score window was seen runs only LM^A, and its features are those computed afresh."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.preprocessing import preprocess_obs

    env = gym.make("lmm/ScoreFollowing-v0", pieces=PIECES)
    env.observation_space.seed(1)
    common = {"lm_dir": str(lm_dir), "paired_budget": 2, "features_dim": 32, "readout": "match"}
    cached, plain = (PPO("MultiInputPolicy", env, n_steps=32, device="cpu", seed=0,
                         policy_kwargs={"features_extractor_class": LMMExtractor,
                                        "features_extractor_kwargs": {**common, "cache_states": size}}).policy
                     for size in (64, 0))
    obs = {k: np.stack([env.observation_space[k].sample() for _ in range(8)]) for k in env.observation_space}
    later = {k: np.stack([env.observation_space[k].sample() for _ in range(8)]) for k in env.observation_space}
    later["score"] = obs["score"][[0, 0, 1, 1, 2, 2, 3, 3]]  # new sounds and tempi over score windows seen before
    ran = {"_heard_mapped": [], "_score_read": []}
    for name, calls in ran.items():
        original = getattr(LMMExtractor, name)
        monkeypatch.setattr(LMMExtractor, name, lambda self, x, calls=calls, original=original:
                            calls.append(len(x)) or original(self, x))

    def tensors(batch):
        return preprocess_obs(cached.obs_to_tensor(batch)[0], cached.observation_space)

    with torch.no_grad():
        cached.features_extractor(tensors(obs))
        features = cached.features_extractor(tensors(later))
        assert ran == {"_heard_mapped": [8, 8], "_score_read": [8]}
        assert cached.features_extractor.cached_states == [16, 8]
        assert cached.features_extractor.cache_counts == [[16, 16], [16, 8]]  # [looked up, encoded] per half
        assert torch.allclose(features, plain.features_extractor(tensors(later)), atol=1e-5)
