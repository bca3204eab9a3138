from agents.lm.audio import train_audio_lm
from agents.lm.mapping import held_out_ids
from agents.lm.probe import pitch_probe
from lmm_envs.music import corpus


def test_the_pitch_probe_scores_a_state_and_the_input_on_held_out_pieces():
    lm_a = train_audio_lm(size="tiny", steps=20, limit=2, progress=False).model
    probe = pitch_probe(lm_a, corpus.paired_ids(2), held_out_ids()[:1])
    assert probe["train_frames"] == 200 and probe["test_frames"] == 100
    assert 0.0 <= probe["f1"] <= 1.0
    # a spectrum frame says which keys sound far better than saying every key does (F1 about 0.06 here)
    assert probe["input_f1"] > 0.2
