"""The loaded model: schema checks, the exact fast path, and the generic pyfunc path.

Both paths answer alike (schema.py has the rules): every check runs before the
path is chosen, so INFERENCE_FAST_PATH=false changes the speed, never the answer.

A request is first checked and prepared (`prepare`), then predicted (`run`, or `run_many`
for requests that arrived together). It takes one of three routes:
- FAST: the exact fast path, on a float64 matrix;
- TABLE: the generic path for all-numeric signatures, every column present, finite values:
  the DataFrame is built from the matrix, typed as the signature says, and, for
  scikit-learn models, handed to the estimator's own predict (the pyfunc flavour's
  predict_fn) without MLflow's schema enforcement, which our checks have already done.
  Used only after it has answered probe rows exactly as `mlflow.pyfunc` answers them;
- OTHER: everything else, through `mlflow.pyfunc` as MLflow serves it.
FAST and TABLE requests are predicted in batches where batching.py has proven that exact.
"""

from __future__ import annotations

import inspect
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstack.serving import batching, fastpath
from mlstack.serving.content_types import CSV
from mlstack.serving.decoder import ParsedInput, Table
from mlstack.serving.errors import BadRequest
from mlstack.serving.schema import FLOAT32_MAX, INT_TYPES, TableSchema, check_float32_matrix

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 500
FAST, TABLE, OTHER = "fast", "table", "other"
# An answer that is an error, in the proofs' comparisons (its message follows).
ERROR_MARK = b"\0error\0"


@dataclass
class Prepared:
    """A checked request, ready for the model: its route and the route's input.

    data: FAST, a float64 matrix in the fast path's column order; TABLE, one in the
    signature's order; OTHER, what mlflow.pyfunc is given. table: the checked rows.
    """

    route: str
    data: Any
    rows: int
    table: Table | None = None
    params: dict[str, Any] | None = None


def _short(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else message
    return first if len(first) <= MESSAGE_LIMIT else first[:MESSAGE_LIMIT] + "..."


class Predictor:
    """Turns parsed requests into predictions with one MLflow pyfunc model."""

    def __init__(
        self,
        model: Any,
        model_dir: Path | None = None,
        fast_path: bool = True,
        batch_max_rows: int = 1,
    ) -> None:
        self.model = model
        metadata = model.metadata
        self.input_schema = metadata.get_input_schema()
        self.table_schema = TableSchema.from_mlflow(self.input_schema)
        self.has_params_schema = metadata.get_params_schema() is not None
        self.accepts_params = "params" in inspect.signature(model.predict).parameters
        self.estimator = self._scikit_learn_estimator()
        # Found with the fast path on or off: what clients may send must not depend on it.
        in_float32 = self.estimator is not None and fastpath.computes_in_float32(self.estimator)
        self.float32_columns = (
            self.table_schema.float32_columns(in_float32) if self.table_schema else []
        )
        self.fast: fastpath.FastModel | None = None
        self.fast_path_note = "off (INFERENCE_FAST_PATH=false)"
        if fast_path:
            self.fast, self.fast_path_note = self._build_fast_path(model_dir)
        self.batch_max_rows = batch_max_rows
        # Routes whose batches are proven exact, and the kind of answer proven.
        self.proven: dict[str, tuple[Any, ...]] = {}
        self.table_run: Callable[[Any], Any] | None = None
        self.generic_note = "mlflow.pyfunc"
        self.batching_note = "off (INFERENCE_BATCH_MAX_ROWS=1)"
        if self.fast is None:
            self.generic_note = self._build_table_route(model_dir)
        elif batch_max_rows > 1:
            self._prove_fast_batches(model_dir)

    @property
    def column_names(self) -> list[str] | None:
        """The signature's input column names, if it has named columns."""
        return self.table_schema.names if self.table_schema else None

    # --- serving ---------------------------------------------------------------------------

    def predict(self, parsed: ParsedInput) -> Any:
        """Predictions for a parsed request; BadRequest for input the model cannot take."""
        return self.run(self.prepare(parsed))

    def prepare(self, parsed: ParsedInput) -> Prepared:
        """Check a parsed request against the signature and choose its route; BadRequest for
        input the model cannot take."""
        schema = self.table_schema
        if schema is None or parsed.table is None:
            return Prepared(OTHER, self._parse_raw(parsed), 0, None, parsed.params)
        table = schema.align(parsed.table)
        if parsed.media_type == CSV:
            table = schema.convert_text(table)
        else:
            schema.check_types(table)
        rows = len(table.rows)
        if schema.all_numeric:
            complete = len(table.columns) == len(schema.names)
            order = self.fast.feature_order if self.fast is not None else table.columns
            if self.fast is None and complete:
                order = schema.names
            matrix = schema.matrix(table, order)
            # The largest magnitude (NaN if any value is missing) settles the common case
            # of every check below at once.
            peak = float(np.abs(matrix).max()) if matrix.size else 0.0
            if not peak <= FLOAT32_MAX:
                check_float32_matrix(matrix, order, self.float32_columns, table.columns)
            # Missing and infinite values: the model decides (it may refuse them); integers
            # above 2**53 are not exact in float64, the type MLflow hands scikit-learn.
            exact = peak < (fastpath.EXACT_INTEGER_LIMIT if schema.has_int else np.inf)
            fast = self.fast is not None and not (parsed.params and self.has_params_schema)
            if fast and exact:
                return Prepared(FAST, matrix, rows, table, parsed.params)
            table_route = self.table_run is not None and parsed.params is None
            if table_route and exact and order == schema.names:
                return Prepared(TABLE, matrix, rows, table)
        else:
            schema.check_float32(table, self.float32_columns)
        return Prepared(OTHER, schema.dataframe(table), rows, table, parsed.params)

    def run(self, work: Prepared) -> Any:
        """The predictions for one prepared request; BadRequest if the model refuses it."""
        if work.route == FAST:
            assert self.fast is not None and self.table_schema is not None
            answer = self.fast.predict(work.data)
            if answer is not None:  # None: rows the generic path must judge
                return answer
            return self.generic_predict(self.table_schema.dataframe(work.table), work.params)
        if work.route == TABLE:
            return self._run_table(work.data)
        return self.generic_predict(work.data, work.params)

    def run_many(self, works: Sequence[Prepared]) -> list[Any]:
        """Each request's predictions, or the exception predicting it raised; requests of a
        route proven to batch exactly are predicted together, up to batch_max_rows rows."""
        if len(works) == 1:
            return [self._outcome(works[0])]
        outcomes: list[Any] = [None] * len(works)
        batchable: dict[str, list[int]] = {}
        for index, work in enumerate(works):
            if work.route in self.proven and work.rows < self.batch_max_rows:
                batchable.setdefault(work.route, []).append(index)
            else:
                outcomes[index] = self._outcome(work)
        for route, indexes in batchable.items():
            sizes = [works[index].rows for index in indexes]
            for positions in batching.group(sizes, self.batch_max_rows):
                chosen = [indexes[position] for position in positions]
                if len(chosen) == 1:
                    outcomes[chosen[0]] = self._outcome(works[chosen[0]])
                    continue
                answers = batching.run_batched(
                    lambda matrices, route=route: self._run_stacked(route, matrices),
                    lambda position, chosen=chosen: self._outcome(works[chosen[position]]),
                    [works[index].data for index in chosen],
                    self.proven[route],
                )
                for index, answer in zip(chosen, answers, strict=True):
                    outcomes[index] = answer
        return outcomes

    def _outcome(self, work: Prepared) -> Any:
        try:
            return self.run(work)
        except Exception as error:  # handed to the request it belongs to
            return error

    def _run_stacked(self, route: str, matrices: list[np.ndarray]) -> Any:
        stacked = np.concatenate(matrices)
        if route == FAST:
            assert self.fast is not None
            return self.fast.predict(stacked)
        return self._run_table(stacked)

    def _run_table(self, matrix: np.ndarray) -> Any:
        assert self.table_run is not None and self.table_schema is not None
        frame = self.table_schema.numeric_frame(matrix)
        return self._model_call(self.table_run, frame)

    def _parse_raw(self, parsed: ParsedInput) -> Any:
        """Input without named columns: MLflow's own parsing, as its scoring server does."""
        from mlflow.exceptions import MlflowException

        try:
            if parsed.media_type == CSV:
                import pandas as pd

                header = 0 if parsed.csv_has_header else None
                return pd.read_csv(io.StringIO(parsed.raw), header=header)
            from mlflow.pyfunc.scoring_server import infer_and_parse_data

            return infer_and_parse_data(parsed.raw, self.input_schema)
        except MlflowException as error:
            raise BadRequest(_short(error.message)) from None
        except (ValueError, TypeError, OverflowError) as error:
            raise BadRequest(f"cannot read the input: {_short(str(error))}") from None
        except RecursionError:
            raise BadRequest("cannot read the input: it nests too deeply") from None

    def generic_predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The pyfunc model's own predict, with its errors turned into 400s."""
        if self.accepts_params and params is not None:
            return self._model_call(lambda frame: self.model.predict(frame, params=params), data)
        return self._model_call(self.model.predict, data)

    @staticmethod
    def _model_call(predict: Callable[[Any], Any], data: Any) -> Any:
        """predict(data), with the errors a model raises for bad input turned into 400s."""
        from mlflow.exceptions import MlflowException

        try:
            return predict(data)
        except MlflowException as error:
            raise BadRequest(f"the model refused the input: {_short(error.message)}") from None
        except (ValueError, TypeError, KeyError, OverflowError) as error:
            raise BadRequest(f"the model refused the input: {_short(str(error))}") from None

    # --- fast path -------------------------------------------------------------------------

    def _build_fast_path(self, model_dir: Path | None) -> tuple[fastpath.FastModel | None, str]:
        pyfunc = self.model.metadata.flavors.get("python_function", {})
        if pyfunc.get("loader_module") != "mlflow.sklearn":
            return None, "off (not a scikit-learn model)"
        schema = self.table_schema
        if schema is None or not schema.all_numeric:
            return None, "off (the signature has no all-numeric named columns)"
        estimator = self.estimator
        if estimator is None:
            return None, "off (no raw model)"
        order = fastpath.feature_order(estimator, schema.names)
        if order is None:
            return None, "off (the fitted feature names do not match the signature)"
        name = type(estimator).__name__
        float32_columns = [schema.by_name[column].type == "float" for column in order]
        # The pyfunc flavour calls predict_fn (MLflow's pyfunc_predict_fn, default predict).
        method = pyfunc.get("predict_fn", "predict")
        try:
            fast = fastpath.build(estimator, order, method, float32_columns)
            integer_columns = [schema.by_name[column].type in INT_TYPES for column in order]
            rows = fastpath.probe_rows(fast, self._example(model_dir, order), integer_columns)
            reason = fastpath.verify(fast, lambda matrix: self._reference(matrix, order), rows)
        except fastpath.Unsupported as why:
            return None, f"off ({name}: {why})"
        except Exception as error:  # an estimator unlike those reproduced: no fast path
            log.warning("no fast path for %s: %r", name, error)
            return None, f"off ({name}: {_short(str(error))})"
        if reason is not None:
            log.warning("fast path not exact, serving the generic path: %s", reason)
            return None, f"off (not exact: {reason})"
        return fast, f"on ({fast.description}, exact on {len(rows)} probe rows)"

    def _scikit_learn_estimator(self) -> Any:
        """The fitted scikit-learn estimator behind an mlflow.sklearn model, else None."""
        flavors = self.model.metadata.flavors
        if flavors.get("python_function", {}).get("loader_module") != "mlflow.sklearn":
            return None
        try:
            return fastpath.raw_model(self.model)
        except Exception as error:  # any flavour quirk: no fast path, no harm
            log.info("no raw scikit-learn model: %s", error)
            return None

    def _reference(self, matrix: np.ndarray, order: list[str]) -> Any:
        """The pyfunc model's predictions for a float64 matrix in the given column order,
        reached as a JSON request's rows reach it (schema.dataframe, then predict)."""
        assert self.table_schema is not None
        whole = [self.table_schema.by_name[name].type in INT_TYPES for name in order]
        rows = [
            [int(value) if integer else value for value, integer in zip(row, whole, strict=True)]
            for row in matrix.tolist()
        ]
        return self.model.predict(self.table_schema.dataframe(Table(list(order), rows)))

    def _example(self, model_dir: Path | None, order: list[str]) -> np.ndarray | None:
        if model_dir is None:
            return None
        try:
            example = self.model.metadata.load_input_example(str(model_dir))
            if example is None or not hasattr(example, "columns"):
                return None
            return example[order].to_numpy(dtype=np.float64)
        except Exception as error:  # a missing or odd example only weakens the probe
            log.info("input example not used for the fast-path check: %s", error)
            return None

    # --- the TABLE route and batching, proven at start-up ---------------------------------

    def _build_table_route(self, model_dir: Path | None) -> str:
        """Choose how TABLE requests are predicted, and whether in batches; a note for the log."""
        schema = self.table_schema
        if schema is None or not schema.all_numeric:
            return "mlflow.pyfunc (no all-numeric named columns)"
        whole = [spec.type in INT_TYPES for spec in schema.columns]
        rows = batching.probe_rows(self._example(model_dir, schema.names), whole)
        alone = [
            self._answer(lambda row=row: self.generic_predict(self._typed(row))) for row in rows
        ]
        for name, run in self._table_candidates():
            self.table_run = run
            if all(
                self._answer(lambda row=row: self._run_table(row[None, :])) == answer
                for row, answer in zip(rows, alone, strict=True)
            ):
                self._prove_batches(TABLE, self._run_table, rows, alone)
                return f"{name} (exact on {len(rows)} probe rows)"
        self.table_run = None
        return "mlflow.pyfunc (typed frames did not answer the probe rows exactly)"

    def _table_candidates(self) -> list[tuple[str, Callable[[Any], Any]]]:
        """The leaner way first: a scikit-learn model's own method, as its flavour calls it."""
        candidates: list[tuple[str, Callable[[Any], Any]]] = []
        pyfunc = self.model.metadata.flavors.get("python_function", {})
        method = getattr(self.estimator, pyfunc.get("predict_fn", "predict"), None)
        if method is not None:
            candidates.append((f"scikit-learn's {type(self.estimator).__name__} directly", method))
        candidates.append(("mlflow.pyfunc on typed frames", self.model.predict))
        return candidates

    def _prove_fast_batches(self, model_dir: Path | None) -> None:
        assert self.fast is not None and self.table_schema is not None
        order = self.fast.feature_order
        whole = [self.table_schema.by_name[name].type in INT_TYPES for name in order]
        rows = batching.probe_rows(self._example(model_dir, order), whole)
        fast = self.fast
        alone = [self._answer(lambda row=row: fast.predict(row[None, :])) for row in rows]
        self._prove_batches(FAST, fast.predict, rows, alone)

    def _prove_batches(
        self, route: str, predict: Callable[[np.ndarray], Any], rows: np.ndarray, alone: list
    ) -> None:
        if self.batch_max_rows <= 1:
            return
        usable = [None if answer.startswith(ERROR_MARK) else answer for answer in alone]
        proven, reason = batching.prove(predict, rows, usable, self.batch_max_rows)
        if proven is None:
            log.warning("batching off for the %s route: %s", route, reason)
            self.batching_note = f"off (not exact: {reason})"
            return
        self.proven[route] = proven
        self.batching_note = f"on (up to {self.batch_max_rows} rows, exact on probe rows)"

    @staticmethod
    def _answer(predict: Callable[[], Any]) -> bytes:
        """What a client would receive: the encoded answer, or the error's message."""
        try:
            answer = predict()
        except Exception as error:  # compared like an answer: the same refusal, or not
            return ERROR_MARK + f"{type(error).__name__}: {error}".encode()
        return ERROR_MARK + b"None" if answer is None else batching.answer_bytes(answer)

    def _typed(self, row: np.ndarray) -> Any:
        """One row in the signature's order as a JSON request's row reaches mlflow.pyfunc."""
        assert self.table_schema is not None
        names = self.table_schema.names
        values = [
            int(value) if self.table_schema.by_name[name].type in INT_TYPES else float(value)
            for name, value in zip(names, row.tolist(), strict=True)
        ]
        return self.table_schema.dataframe(Table(list(names), [values]))


def load_predictor(model_dir: Path, fast_path: bool = True, batch_max_rows: int = 1) -> Predictor:
    """Load the MLflow model in model_dir with mlflow.pyfunc and wrap it."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(model_dir))
    return Predictor(model, model_dir, fast_path=fast_path, batch_max_rows=batch_max_rows)
