import numpy as np
import pytest
import torch

from soundtag.features.logmel import FrontendConfig, LogMel
from soundtag.training.augment import NYQUISTS_HZ, AugmentConfig, Augmenter, mix_at, spec_augment, swing
from soundtag.training.config import ConfigError, make_config

OFF = dict(mix=0.0, context=0.0, reverb=0.0, noise=0.0, floor=0.0, eq=0.0, band_limit=0.0, quiet=0.0,
           background_only=0.0, recorded=0.0, time_shift=False, freq_masks=0, time_masks=0)
SAMPLES = 32_000  # one-second clips keep these tests fast
N_CLASSES = 4


@pytest.fixture(scope="module")
def clips() -> tuple[LogMel, torch.Tensor, torch.Tensor]:
    """Eight clips of white noise, level -20 dBFS, in four classes, as mel power."""
    frontend = LogMel(FrontendConfig())
    waves = 0.1 * torch.from_numpy(np.random.default_rng(0).standard_normal((8, SAMPLES))).float()
    return frontend, frontend.power_mel(waves), torch.arange(8) % N_CLASSES


def augmenter(clips: tuple, rooms: torch.Tensor | None = None, **changes: object) -> Augmenter:
    frontend, power, labels = clips
    return Augmenter(AugmentConfig(**{**OFF, **changes}), frontend, power, labels, np.arange(8), N_CLASSES, SAMPLES,
                     rooms)


def raw(aug: Augmenter, idx: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mel power before the log (the frontend's compress and SpecAugment bypassed) and targets."""
    aug.frontend.compress = lambda x: x  # instance attribute: only this augmenter's frontend
    return aug(idx, np.random.default_rng(seed))


def test_everything_off_is_the_clean_clip_with_its_label(clips: tuple) -> None:
    x, y = raw(augmenter(clips), np.arange(8))
    torch.testing.assert_close(x, clips[1])
    torch.testing.assert_close(y, torch.eye(N_CLASSES)[clips[2]])


def test_mixtures_add_power_and_label_every_audible_source(clips: tuple) -> None:
    x, y = raw(augmenter(clips, mix=1.0, mix_three=0.0, mix_db=0.0), np.arange(8))
    assert (x.sum((1, 2)) > 1.9 * clips[1].sum((1, 2))).all()  # a second clip at the same level: twice the power
    assert ((y == 1) | (y == 0)).all() and (y.sum(1) >= 1).all()
    assert (y.sum(1) == 2).sum() >= 4  # most partners are of another class: both are targets
    assert (y[torch.arange(8), clips[2]] == 1).all()


def test_mix_at_sets_the_relative_level() -> None:
    power = torch.ones(2, 4, 10)
    torch.testing.assert_close(mix_at(power[:1], 3 * power[1:], torch.tensor([-20.0])), power[:1] * 1.01)


def test_faint_sources_are_weaker_targets(clips: tuple) -> None:
    _, y = raw(augmenter(clips, mix=1.0, mix_three=1.0, mix_db=30.0), np.arange(8), seed=1)
    fractional = (y > 0) & (y < 1)  # a source 10-20 dB below the loudest
    assert fractional.any() and (y.amax(1) == 1).all()  # the loudest source is always a full target


def test_background_only_has_no_target_and_only_noise(clips: tuple) -> None:
    x, y = raw(augmenter(clips, background_only=1.0), np.arange(8))
    assert (y == 0).all() and (x > 0).all()


def test_band_limit_removes_everything_above_the_nyquist(clips: tuple) -> None:
    aug = augmenter(clips, band_limit=1.0)
    x, _ = raw(aug, np.arange(8))
    above = aug.band_hz > max(NYQUISTS_HZ) * 1.1
    assert above.any() and (x[:, above] < 1e-6 * clips[1][:, above]).all()
    assert torch.allclose(x[:, aug.band_hz < 3000], clips[1][:, aug.band_hz < 3000])


def test_quiet_recordings_are_quiet(clips: tuple) -> None:
    aug = augmenter(clips, quiet=1.0)
    x, _ = raw(aug, np.arange(8))
    assert (aug.dbfs(clips[1]) > -25).all()
    assert ((aug.dbfs(x) > -61) & (aug.dbfs(x) < -34)).all()


def test_rooms_come_from_the_reverberant_copies_for_every_source(clips: tuple) -> None:
    power = clips[1]
    rooms = torch.stack([2 * power, 3 * power])  # stand-ins for two reverberant copies of every clip
    x, _ = raw(augmenter(clips, rooms, reverb=1.0), np.arange(8))
    ratio = (x / power).mean((1, 2))
    assert all(any(torch.isclose(r, torch.tensor(v)) for v in (2.0, 3.0)) for r in ratio)
    flipped = torch.stack([power.flip(-1)])  # a "room" that reverses time: its clips are easy to recognise
    aug = augmenter(clips, flipped, reverb=1.0, mix=1.0, mix_three=0.0, mix_db=0.0)
    picked = []
    aug._clips = lambda idx, room, rng, _clips=aug._clips: picked.append(room.copy()) or _clips(idx, room, rng)
    raw(aug, np.arange(8))
    assert len(picked) == 3 and all(p.all() for p in picked)  # the clips, then each partner draw, all in the room


def test_recorded_puts_a_room_noise_eq_and_band_limit_on_every_chosen_clip(clips: tuple) -> None:
    aug = augmenter(clips, torch.stack([2 * clips[1]]), recorded=1.0)
    chosen = {}

    def spy(name: str, position: int) -> None:  # record which clips each step was asked to change
        method = getattr(aug, name)

        def wrapped(*args: object) -> object:
            chosen[name] = np.asarray(args[position]).copy()
            return method(*args)
        setattr(aug, name, wrapped)
    for name, position in (("_clips", 1), ("_add_noise", 1), ("_eq", 0), ("_band_limit", 0)):
        spy(name, position)
    x, _ = raw(aug, np.arange(8))
    assert set(chosen) == {"_clips", "_add_noise", "_eq", "_band_limit"} and all(m.all() for m in chosen.values())
    above = aug.band_hz > max(NYQUISTS_HZ) * 1.1
    assert (x[:, above] < 1e-6 * clips[1][:, above]).all()


def test_context_keeps_the_share_of_the_sound_left_in_the_window(clips: tuple) -> None:
    _, y = raw(augmenter(clips, context=1.0), np.arange(8))
    assert ((y.sum(1) > 0) & (y.sum(1) <= 1)).all()
    assert (y.sum(1) < 1).any()  # some clips were moved mostly out: a weaker target


def test_noise_sets_the_snr(clips: tuple) -> None:
    aug = augmenter(clips, noise=1.0, snr_db_min=20.0)
    x, _ = raw(aug, np.arange(8))
    added = aug.dbfs(x - clips[1]) - aug.dbfs(clips[1])
    assert ((added < -19.9) & (added > -30.1)).all()


def test_noise_level_swings_within_its_depth_and_keeps_the_snr(clips: tuple) -> None:
    frame_db = {}
    for depth in (0.0, 8.0):
        aug = augmenter(clips, noise=1.0, snr_db_min=10.0, noise_swing_db=depth)
        x, _ = raw(aug, np.arange(8))
        added = x - clips[1]
        frame_db[depth] = 10 * torch.log10(added[:, 32:].mean(1))  # (clips, frames); upper bands: brown noise
        # wanders by itself in the lowest ones
        level = aug.dbfs(added) - aug.dbfs(clips[1])
        assert ((level < -9.9) & (level > -30.1)).all()  # whole-clip SNR as before
    spread = {d: v.std(1).mean() for d, v in frame_db.items()}
    assert spread[8.0] > 1.3 * spread[0.0]  # frame levels move more than the noise's own fluctuation


def test_swing_peaks_within_depth_and_zero_depth_is_steady() -> None:
    gains = swing(6, 500, 0.01, np.array([0.0, 3.0, 3.0, 8.0, 8.0, 8.0]), np.random.default_rng(0))
    db = 10 * torch.log10(gains)
    assert (db[0] == 0).all()
    assert (db[1:3].abs() <= 3.0 + 1e-5).all() and (db[3:].abs() <= 8.0 + 1e-5).all()
    assert (db[1:].std(1) > 0.01).all()


def test_a_noise_floor_lies_30_to_60_db_down(clips: tuple) -> None:
    aug = augmenter(clips, floor=1.0)
    x, _ = raw(aug, np.arange(8))
    added = aug.dbfs(x - clips[1]) - aug.dbfs(clips[1])
    assert ((added < -29.9) & (added > -60.1)).all()


def test_same_seed_same_batch(clips: tuple) -> None:
    aug = augmenter(clips, clips[1][None], **{k: 0.5 for k in ("mix", "context", "reverb", "noise", "floor", "eq",
                                                               "band_limit", "quiet")})
    a, b = raw(aug, np.arange(8), seed=3), raw(aug, np.arange(8), seed=3)
    torch.testing.assert_close(a, b)


def test_spec_augment_masks_whole_bands_and_frames() -> None:
    x = torch.randn(4, 64, 100)
    bands = spec_augment(x, AugmentConfig(freq_masks=1, freq_mask_width=64, time_masks=0), np.random.default_rng(0))
    zero_bands = (bands == 0).all(-1)  # a frequency mask blanks a band over every frame
    assert zero_bands.any() and torch.equal(bands[~zero_bands], x[~zero_bands])
    frames = spec_augment(x, AugmentConfig(freq_masks=0, time_masks=1, time_mask_width=100), np.random.default_rng(0))
    zero_frames = (frames == 0).all(1)
    assert zero_frames.any() and torch.equal(frames.transpose(1, 2)[~zero_frames], x.transpose(1, 2)[~zero_frames])


@pytest.mark.parametrize(("override", "message"), [
    ("augment.mix=1.5", "augment.mix=1.5: a probability"), ("augment.eq_db=-1", "zero or positive"),
    ("augment.snr_db_min=50", r"\[-30, 30\]")])
def test_out_of_range_values_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(overrides=[override])
