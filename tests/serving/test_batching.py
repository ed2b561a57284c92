"""Batching (batching.py): answers cut per request, the proof at start-up, the fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack.serving import batching

ROWS = np.arange(40, dtype=np.float64).reshape(20, 2)


def row_sums(matrix: np.ndarray) -> np.ndarray:
    """Each row's own answer, whatever its neighbours: batches are exact."""
    return matrix.sum(axis=1)


def alone(predict, rows: np.ndarray = ROWS) -> list[bytes]:
    return [batching.answer_bytes(predict(rows[i : i + 1])) for i in range(len(rows))]


@pytest.mark.parametrize(
    "answer",
    [
        np.arange(6.0),
        np.arange(12.0).reshape(6, 2),
        pd.DataFrame({"a": range(6), "b": list("abcdef")}),
        pd.Series(np.arange(6.0), index=range(10, 16)),
        list(range(6)),
    ],
    ids=["vector", "matrix", "frame", "series", "list"],
)
def test_split_cuts_every_kind_of_answer_by_rows(answer) -> None:
    parts = batching.split(answer, [1, 2, 3])
    assert parts is not None and [len(part) for part in parts] == [1, 2, 3]
    assert batching.answer_bytes(parts[1]) == batching.answer_bytes(
        answer.iloc[1:3] if hasattr(answer, "iloc") else answer[1:3]
    )


def test_split_refuses_what_is_not_one_row_per_input_row() -> None:
    assert batching.split(np.arange(5.0), [1, 2, 3]) is None
    assert batching.split({"a": [1, 2, 3]}, [1, 2]) is None
    assert batching.split(np.float64(1.0), [1]) is None


def test_group_keeps_batches_within_the_rows() -> None:
    assert batching.group([1, 1, 1, 1, 1], 2) == [[0, 1], [2, 3], [4]]
    assert batching.group([1, 5, 1, 1], 4) == [[0], [1], [2, 3]]
    assert batching.group([3, 1], 4) == [[0, 1]]


def test_probe_rows_come_from_the_example_with_whole_numbers_where_integers() -> None:
    example = np.array([[1.5, 10.0], [2.5, 20.0]])
    rows = batching.probe_rows(example, [False, True])
    assert rows.shape == (batching.PROBE_ROWS, 2)
    assert np.array_equal(rows[:2], example)
    assert np.array_equal(rows[:, 1], np.round(rows[:, 1]))
    assert np.isfinite(batching.probe_rows(None, [False, False, True])).all()


def test_a_row_wise_model_is_proven() -> None:
    proven, reason = batching.prove(row_sums, ROWS, alone(row_sums), max_rows=8)
    assert reason is None
    assert proven == ("ndarray", "<f8", ())


def test_answers_that_depend_on_the_batch_are_caught() -> None:
    def centred(matrix: np.ndarray) -> np.ndarray:  # depends on the other rows
        return matrix.sum(axis=1) - matrix.sum(axis=1).mean()

    proven, reason = batching.prove(centred, ROWS, alone(centred), max_rows=8)
    assert proven is None and "differs in a batch of 2 rows" in reason


def test_a_last_bit_difference_is_caught() -> None:
    def rounding(matrix: np.ndarray) -> np.ndarray:  # as a BLAS kernel for many rows may
        sums = matrix.sum(axis=1)
        return sums if len(matrix) == 1 else np.nextafter(sums, np.inf)

    proven, reason = batching.prove(rounding, ROWS, alone(rounding), max_rows=8)
    assert proven is None and "differs" in reason


def test_answers_whose_type_changes_with_the_rows_are_caught() -> None:
    def typed(matrix: np.ndarray) -> np.ndarray:
        sums = matrix.sum(axis=1)
        return sums.astype(np.float32) if len(matrix) > 4 else sums

    proven, reason = batching.prove(typed, ROWS, alone(typed), max_rows=8)
    assert proven is None and ("type" in reason or "differs" in reason)


def test_rows_that_fail_alone_are_left_out_and_too_few_rows_prove_nothing() -> None:
    answers = alone(row_sums)
    answers[3] = None
    proven, _ = batching.prove(row_sums, ROWS, answers, max_rows=8)
    assert proven is not None
    proven, reason = batching.prove(row_sums, ROWS, [None] * len(ROWS), max_rows=8)
    assert proven is None and reason == "too few probe rows the model answers"
    assert batching.prove(row_sums, ROWS, alone(row_sums), max_rows=1)[0] is None


def test_run_batched_cuts_one_answer_or_falls_back_to_each_alone() -> None:
    matrices = [ROWS[:1], ROWS[1:3], ROWS[3:4]]
    proven = batching.kind(row_sums(ROWS))
    calls: list[int] = []

    def many(parts: list[np.ndarray]) -> np.ndarray:
        calls.append(len(parts))
        return row_sums(np.concatenate(parts))

    def one(index: int):
        return row_sums(matrices[index])

    answers = batching.run_batched(many, one, matrices, proven)
    assert calls == [3]
    assert [answer.tolist() for answer in answers] == [[1.0], [5.0, 9.0], [13.0]]

    def failing(parts: list[np.ndarray]) -> np.ndarray:
        raise ValueError("Input contains NaN")  # one request's row: each is answered alone

    answers = batching.run_batched(failing, one, matrices, proven)
    assert [answer.tolist() for answer in answers] == [[1.0], [5.0, 9.0], [13.0]]
    other_kind = batching.run_batched(
        lambda parts: many(parts).astype(np.float32), one, matrices, proven
    )
    assert [answer.dtype for answer in other_kind] == [np.float64] * 3
