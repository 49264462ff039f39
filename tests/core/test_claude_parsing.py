"""The pure parts of Claude reranking: repairing answers, windows, rank scores and prompt templates."""

from __future__ import annotations

import pytest

from rerank_kit.scorers.llm import prompts
from rerank_kit.scorers.llm.parsing import (
    checked_id,
    complete_ranking,
    ids_in_text,
    rank_scores,
    ranking_from_text,
    ranking_from_tool_input,
    reorder_window,
    scores_from_text,
    scores_from_tool_input,
    sliding_windows,
)


def test_a_clean_permutation_is_kept_as_given() -> None:
    parsed = complete_ranking([3, 1, 2], 3)
    assert parsed.order == [2, 0, 1]
    assert parsed.usable and parsed.problems() == ""


def test_duplicates_out_of_range_and_negative_ids_are_dropped_and_missing_appended_in_input_order() -> None:
    parsed = complete_ranking([4, 4, 0, 9, -2, 2], 5)
    assert parsed.order == [3, 1, 0, 2, 4]
    assert parsed.duplicates == [4]
    assert parsed.ignored == [0, 9, -2]
    assert parsed.missing == [1, 3, 5]


@pytest.mark.parametrize("raw", [True, False, None, 1.5, "two", [1], {"id": 1}])
def test_values_that_are_not_ids_are_never_used_as_positions(raw: object) -> None:
    assert checked_id(raw, 3) is None


@pytest.mark.parametrize(("raw", "position"), [(2, 1), (2.0, 1), ("2", 1), ("[2]", 1), (" 3 ", 2)])
def test_ids_written_as_numbers_or_bracketed_strings_are_accepted(raw: object, position: int) -> None:
    assert checked_id(raw, 3) == position


def test_an_empty_or_all_invalid_ranking_is_not_usable_but_still_complete() -> None:
    for raw in ([], [0, 7, -1]):
        parsed = complete_ranking(raw, 3)
        assert not parsed.usable
        assert parsed.order == [0, 1, 2]


def test_a_tool_input_without_a_ranking_list_is_not_usable() -> None:
    assert not ranking_from_tool_input({"order": [1, 2]}, 2).usable
    assert not ranking_from_tool_input("1,2", 2).usable


def test_a_ranking_sent_as_a_string_is_read_as_text() -> None:
    assert ranking_from_tool_input({"ranking": "[2] > [1]"}, 2).order == [1, 0]


def test_text_answers_prefer_bracketed_ids_over_other_numbers() -> None:
    assert ids_in_text("Of the 3 passages: [2] > [3] > [1]") == [2, 3, 1]
    assert ids_in_text("2, 3, 1") == [2, 3, 1]


def test_a_text_answer_holding_json_uses_its_ranking() -> None:
    assert ranking_from_text('Sure! {"ranking": [2, 1]} done', 2).order == [1, 0]


def test_grades_are_clamped_deduplicated_and_checked() -> None:
    parsed = scores_from_tool_input(
        {"scores": [{"id": 1, "score": 12}, {"id": 1, "score": 3}, {"id": 5, "score": 4}, {"id": 2, "score": "nan"}]},
        3, 0.0, 10.0,
    )
    assert parsed.scores == [10.0, None, None]
    assert parsed.clamped == [1]
    assert parsed.duplicates == [1]
    assert parsed.missing == [2, 3]
    assert parsed.filled(0.0) == [10.0, 0.0, 0.0]


def test_grades_as_an_id_to_score_mapping_are_accepted() -> None:
    assert scores_from_tool_input({"scores": {"2": 7, "1": 1.5}}, 2, 0.0, 10.0).scores == [1.5, 7.0]


def test_grades_in_text_are_read_one_id_and_score_per_line() -> None:
    parsed = scores_from_text("Passage 1: 8\n[2] 3.5 out of 10\nno numbers here", 2, 0.0, 10.0)
    assert parsed.scores == [8.0, 3.5]


def test_no_grade_at_all_is_not_usable() -> None:
    assert not scores_from_tool_input({"scores": []}, 2, 0.0, 10.0).usable


def test_windows_slide_from_the_bottom_up_like_rankgpt() -> None:
    assert sliding_windows(100, 20, 10) == [(80 - 10 * k, 100 - 10 * k) for k in range(9)]


def test_the_last_window_always_reaches_the_top() -> None:
    assert sliding_windows(25, 20, 10) == [(5, 25), (0, 15)]
    assert sliding_windows(7, 20, 10) == [(0, 7)]
    assert sliding_windows(0, 20, 10) == []


@pytest.mark.parametrize(("window_size", "step"), [(1, 1), (20, 0), (20, 21)])
def test_bad_window_settings_fail_early(window_size: int, step: int) -> None:
    with pytest.raises(ValueError, match="window_size"):
        sliding_windows(50, window_size, step)


def test_reordering_a_window_touches_only_that_slice() -> None:
    assert reorder_window([0, 1, 2, 3, 4], 1, 4, [2, 0, 1]) == [0, 3, 1, 2, 4]
    with pytest.raises(ValueError):
        reorder_window([0, 1, 2], 0, 3, [0, 0, 1])


def test_rank_scores_are_distinct_and_strictly_decreasing_with_rank() -> None:
    order = [2, 0, 3, 1]
    scores = rank_scores(order)
    assert scores == [0.75, 0.25, 1.0, 0.5]
    ranked = sorted(range(4), key=lambda i: -scores[i])
    assert ranked == order


def test_templates_must_use_query_and_passages_and_nothing_else() -> None:
    assert prompts.check_template("t", "{query} {passages} {count}")
    with pytest.raises(ValueError, match="passages"):
        prompts.check_template("t", "Query: {query}")
    with pytest.raises(ValueError, match="unknown fields"):
        prompts.check_template("t", "{query} {passages} {documents}")
    with pytest.raises(ValueError, match="not a valid"):
        prompts.check_template("t", "{query} {passages")


def test_passages_are_numbered_from_one_and_cut_to_the_budget() -> None:
    block = prompts.format_passages(["short", "x" * 50], max_chars=10)
    assert block == '<passage id="1">\nshort\n</passage>\n<passage id="2">\nxxxxxxxxx…\n</passage>'
    assert prompts.truncate("abc", None) == "abc"


def test_a_domain_instruction_is_added_to_the_fixed_system_text() -> None:
    text = prompts.system_prompt(prompts.LISTWISE_SYSTEM, "Prefer official API docs.")
    assert text.startswith(prompts.LISTWISE_SYSTEM)
    assert text.endswith("Prefer official API docs.")
    assert prompts.system_prompt(prompts.LISTWISE_SYSTEM, None) == prompts.LISTWISE_SYSTEM
