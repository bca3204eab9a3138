"""All registrations in one place. Bump an id's version whenever what an agent sees or is scored on changes."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

MAX_EPISODE_STEPS = 6000  # five minutes at 20 frames/s

ENV_IDS = {
    "lmm/ScoreFollowing-v0": "lmm_envs.envs.score_following:ScoreFollowingEnv",
    "lmm/Accompaniment-v0": "lmm_envs.envs.accompaniment:AccompanimentEnv",
    "lmm/SightReading-v0": "lmm_envs.envs.sight_reading:SightReadingEnv",
    "lmm/PlayByEar-v0": "lmm_envs.envs.sight_reading:PlayByEarEnv",
}


# native vector envs: gym.make_vec(ID, num_envs=N, vectorization_mode="vector_entry_point")
VECTOR_ENTRY_POINTS = {
    "lmm/ScoreFollowing-v0": "lmm_envs.envs.vector:make_score_following_vector",
    "lmm/Accompaniment-v0": "lmm_envs.envs.vector.accompaniment:AccompanimentVectorEnv",
    "lmm/SightReading-v0": "lmm_envs.envs.vector.playing:SightReadingVectorEnv",
    "lmm/PlayByEar-v0": "lmm_envs.envs.vector.playing:PlayByEarVectorEnv",
}


def register_envs() -> None:
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, vector_entry_point=VECTOR_ENTRY_POINTS[env_id],
                     max_episode_steps=MAX_EPISODE_STEPS)


register_envs()
