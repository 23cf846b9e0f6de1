"""The CFG report's plain-language reading says which levels meet the Part 1 bar, and why the others do not."""

from __future__ import annotations

from physlm.analysis.report_cfg import _reading, probe_headline


def _rows(level: int, trained: float, random_init: float | None) -> list[dict]:
    rows = [dict(target="ancestor_at_end", level=level, layer=3, features="trained", metric="accuracy",
                 value=trained, ci_low=trained - 0.01, ci_high=min(1.0, trained + 0.01))]
    if random_init is not None:
        rows.append(dict(target="ancestor_at_end", level=level, layer=3, features="random_init",
                         metric="accuracy", value=random_init, ci_low=random_init, ci_high=random_init))
    return rows


def test_every_level_meeting_the_bar_is_read_as_the_papers_result():
    headline = probe_headline(_rows(2, 0.995, 0.73) + _rows(3, 0.988, 0.641))
    assert [h["meets target"] for h in headline] == [True, True]
    text = _reading(None, headline, None, None, None)
    assert "Every level clears 90%" in text and "NT2: 99.5% vs random-init 73.0%" in text


def test_levels_missing_the_bar_say_by_what():
    headline = probe_headline(_rows(2, 1.0, 0.745) + _rows(3, 0.996, 0.794) + _rows(4, 0.85, 0.5))
    assert [h["meets target"] for h in headline] == [True, False, False]
    text = _reading(None, headline, None, None, None)
    assert "1 of 3 levels meet the bar" in text and "Every level clears" not in text
    assert "NT3 clears 90% but the random-init model already reads 79.4%, a gap of 20.2 points" in text
    assert "NT4 reaches only 85.0% (&lt; 90%)" in text or "NT4 reaches only 85.0% (< 90%)" in text


def test_generation_below_the_bar_is_not_called_a_success():
    generation = {"accuracy_cut0": 0.587, "accuracy_cut50": 0.63, "cut": 8, "n_samples": 300, "kl": 0.029}
    text = _reading(generation, [], 0.449, 0.419, None)
    assert "below the 80% bar" in text and "meets the 80% bar" not in text
    assert "gap 0.030" in text
