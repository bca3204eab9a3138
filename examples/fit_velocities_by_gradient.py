"""The differentiable piano: fit how hard each key was struck to a recording, by gradient descent through the synth.

The recording is a phrase of a chorale's melody played with unknown dynamics. We know which notes were played and
when (from the score), but not their velocities. HarmonicSynth's torch path renders audio differentiably in the
velocities, so we start every note at velocity 64 and descend on a spectral loss between our rendering and the
recording until the dynamics match.

    python examples/fit_velocities_by_gradient.py
"""

import numpy as np
import torch

from lmm_envs.audio.synth import HarmonicSynth
from lmm_envs.music.expressive import render_performance
from lmm_envs.pieces import corpus_score

synth = HarmonicSynth()
score = corpus_score("bach/bwv66.6").select_parts([0])  # the soprano's melody
performance, _ = render_performance(score, expressiveness=1.0, seed=7)  # played with expressive dynamics
n = 10  # the first ten notes
seconds = float(performance.offset[n - 1]) + 0.2
samples = int(seconds * synth.sample_rate)


def as_batch(values) -> torch.Tensor:
    return torch.tensor(np.asarray(values[:n], dtype=np.float64))[None]


pitch, onset, offset = as_batch(performance.pitch), as_batch(performance.onset), as_batch(performance.offset)
true_velocity = as_batch(performance.velocity)
with torch.no_grad():
    recording = synth.render_torch(pitch, onset, offset, true_velocity, samples)


def spectrum(audio: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(2048, dtype=audio.dtype)
    return torch.log1p(100 * torch.stft(audio, 2048, 512, window=window, return_complex=True).abs())


target = spectrum(recording)
velocity = torch.full_like(true_velocity, 64.0, requires_grad=True)
optimizer = torch.optim.Adam([velocity], lr=2.0)
start_error = float((velocity.detach() - true_velocity).abs().mean())
for step in range(100):
    optimizer.zero_grad()
    loss = (spectrum(synth.render_torch(pitch, onset, offset, velocity, samples)) - target).pow(2).mean()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        velocity.clamp_(1.0, 127.0)
    if step % 50 == 0:
        print(f"step {step:3d}  spectral loss {loss.item():.5f}")
end_error = float((velocity.detach() - true_velocity).abs().mean())
print("true velocities  ", np.round(true_velocity[0].numpy()).astype(int).tolist())
print("fitted velocities", np.round(velocity[0].detach().numpy()).astype(int).tolist())
print(f"mean velocity error: {start_error:.1f} at the start, {end_error:.1f} after fitting")
assert end_error < 0.25 * start_error, "the fit should recover the dynamics"
