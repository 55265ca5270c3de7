"""The shipped model on the kind of recording users have: a two-minute take of the six example sounds, each followed
by 15 s of room tone. Every sound must come back as a tag, with an event where it happens."""

import sys

import pytest
from conftest import REPO

from soundtag.inference.classifier import Classifier

sys.path.insert(0, str(REPO / "examples"))
from take import EXAMPLES, RATE, two_minute_take  # the take `make demo` tags


@pytest.fixture(scope="module")
def analysis() -> tuple:
    take, placed = two_minute_take()
    return Classifier.load().analyze(take, RATE, top_k=10), placed


def test_every_sound_is_a_tag(analysis: tuple) -> None:
    result, _ = analysis
    assert result.duration == pytest.approx(120.0, abs=0.1)
    scores = {t["label"]: t["score"] for t in result.tags}
    threshold = Classifier.load().config.threshold  # what the tags and events call present
    assert all(scores.get(name, 0.0) >= threshold for name in EXAMPLES), scores


def test_every_sound_has_its_event_where_it_happens_and_room_tone_has_none(analysis: tuple) -> None:
    result, placed = analysis
    for name, start, end in placed:
        assert any(e["label"] == name and e["start"] < end and e["end"] > start for e in result.events), name
    window = Classifier.load().config.window
    for e in result.events:  # every event lies on one of the sounds (rain may be heard in the sea's waves)
        assert any(e["start"] > start - window and e["end"] < end + window for _, start, end in placed), e


def test_narrowed_events_find_the_clips_to_within_half_a_second() -> None:
    """Each clip is 5 s of its sound in 15 s of room tone; the narrowed events of the continuous ones (rain, baby,
    clock, sea) start within 0.5 s of the clip, and none of the six reaches into the room tone beyond 0.5 s."""
    take, placed = two_minute_take()
    clf = Classifier.load()
    assert clf.sample_rate == RATE  # narrow_events takes audio at the model's rate
    events = clf.narrow_events(take, clf.analyze(take, RATE).events)
    for name, start, end in placed:
        own = [e for e in events if e["label"] == name and e["start"] < end and e["end"] > start]
        assert own and min(e["start"] for e in own) > start - 0.5 and max(e["end"] for e in own) < end + 0.5, own
        if name in ("rain", "crying_baby", "clock_tick", "sea_waves"):
            assert min(e["start"] for e in own) < start + 0.5, own
