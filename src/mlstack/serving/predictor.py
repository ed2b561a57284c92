"""The loaded model: schema checks, the exact fast path, and the generic pyfunc path.

Both paths answer alike (schema.py has the rules): every check runs before the
path is chosen, so INFERENCE_FAST_PATH=false changes the speed, never the answer.
"""

from __future__ import annotations

import inspect
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mlstack.serving import fastpath
from mlstack.serving.content_types import CSV
from mlstack.serving.decoder import ParsedInput, Table
from mlstack.serving.errors import BadRequest
from mlstack.serving.schema import INT_TYPES, TableSchema, check_float32_matrix

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 500


def _short(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else message
    return first if len(first) <= MESSAGE_LIMIT else first[:MESSAGE_LIMIT] + "..."


class Predictor:
    """Turns parsed requests into predictions with one MLflow pyfunc model."""

    def __init__(self, model: Any, model_dir: Path | None = None, fast_path: bool = True) -> None:
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

    @property
    def column_names(self) -> list[str] | None:
        """The signature's input column names, if it has named columns."""
        return self.table_schema.names if self.table_schema else None

    # --- serving ---------------------------------------------------------------------------

    def predict(self, parsed: ParsedInput) -> Any:
        """Predictions for a parsed request; BadRequest for input the model cannot take."""
        schema = self.table_schema
        if schema is not None and parsed.table is not None:
            table = schema.align(parsed.table)
            if parsed.media_type == CSV:
                table = schema.convert_text(table)
            else:
                schema.check_types(table)
            if schema.all_numeric:
                order = self.fast.feature_order if self.fast is not None else table.columns
                matrix = schema.matrix(table, order)
                check_float32_matrix(matrix, order, self.float32_columns, table.columns)
                fast = self.fast is not None and not (parsed.params and self.has_params_schema)
                if fast and self._fast_path_applies(matrix):
                    assert self.fast is not None
                    answer = self.fast.predict(matrix)
                    if answer is not None:  # None: rows the generic path must judge
                        return answer
            else:
                schema.check_float32(table, self.float32_columns)
            data = schema.dataframe(table)
        else:
            data = self._parse_raw(parsed)
        return self.generic_predict(data, parsed.params)

    def _fast_path_applies(self, matrix: np.ndarray) -> bool:
        # Missing and infinite values: scikit-learn decides (it may refuse them).
        if not np.isfinite(matrix).all():
            return False
        assert self.table_schema is not None
        return not (
            self.table_schema.has_int and np.abs(matrix).max() >= fastpath.EXACT_INTEGER_LIMIT
        )

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
        from mlflow.exceptions import MlflowException

        try:
            if self.accepts_params and params is not None:
                return self.model.predict(data, params=params)
            return self.model.predict(data)
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


def load_predictor(model_dir: Path, fast_path: bool = True) -> Predictor:
    """Load the MLflow model in model_dir with mlflow.pyfunc and wrap it."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(model_dir))
    return Predictor(model, model_dir, fast_path=fast_path)
