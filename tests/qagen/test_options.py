"""The correct option's letter: uniform over A-D whatever the generator's habit, and stable."""

from __future__ import annotations

from collections import Counter

from glave_tasks.qagen.pipeline import shuffle_options


def test_correct_letters_are_uniform_and_deterministic() -> None:
    letters = Counter()
    for v in range(40):
        for q in range(25):
            texts = ["right", "wrong 1", "wrong 2", "wrong 3"]  # the generator always puts it first
            ordered, letter = shuffle_options(texts, 0, f"video-{v}", f"Question {q} about the scene?")
            assert ordered["ABCD".index(letter)] == "right"
            assert [t for t in ordered if t != "right"] == ["wrong 1", "wrong 2", "wrong 3"]
            assert shuffle_options(texts, 0, f"video-{v}", f"Question {q} about the scene?") == (ordered, letter)
            letters[letter] += 1
    # The same templated question asked of many scenes of one video still spreads over the letters.
    per_scene = Counter(shuffle_options(["r", "w1", "w2", "w3"], 0, "video-0", "How many people are in this scene?",
                                        scene)[1] for scene in range(200))
    assert all(abs(n / 200 - 0.25) < 0.08 for n in per_scene.values()) and len(per_scene) == 4
    shares = {k: n / 1000 for k, n in letters.items()}
    assert set(shares) == set("ABCD") and all(abs(s - 0.25) < 0.05 for s in shares.values()), shares


def test_the_correct_option_keeps_its_text_wherever_the_generator_put_it() -> None:
    texts = ["a cat", "a dog", "a bird", "a fish"]
    ordered, letter = shuffle_options(texts, 2, "vid", "Which animal flies?")
    assert ordered["ABCD".index(letter)] == "a bird" and sorted(ordered) == sorted(texts)
