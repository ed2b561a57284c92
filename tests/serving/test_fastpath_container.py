"""The fast paths through the real image: a forest classifier's probabilities and a
HistGradientBoostingRegressor (cloudpickle, 100 iterations), each answered bit for bit
as the model itself answers, one row at a time and as one batch."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import requests

from .conftest import running_server, wait_ready
from .fastpath_models import save_pickled, target
from .models import Diabetes

pytestmark = pytest.mark.docker


def test_classifier_and_hist_gradient_boosting_bit_for_bit(
    inference_image: str, diabetes_data: Diabetes, tmp_path: Path
) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier

    classifier = RandomForestClassifier(n_estimators=50, random_state=0)
    classifier.fit(diabetes_data.train, target(diabetes_data, "classes"))
    boosting = HistGradientBoostingRegressor(max_iter=100, random_state=0)
    boosting.fit(diabetes_data.train, diabetes_data.y_train)
    models = {"predict_proba": classifier, "predict": boosting}
    test = diabetes_data.test
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with ExitStack() as stack:
        servers = {}
        for method, model in models.items():
            path = save_pickled(model, diabetes_data.train, method, tmp_path / method)
            servers[method] = stack.enter_context(
                running_server(inference_image, env, path, wait=False)
            )
        for method, server in servers.items():  # both load at once; then each is checked
            wait_ready(server.url, server.container)
            ping = requests.get(f"{server.url}/ping", timeout=5).json()
            assert ping["fast_path"].startswith("on ("), ping
            expected = getattr(models[method], method)(test)
            whole = server.invoke(_split(test))
            assert whole.status_code == 200, whole.text
            # JSON carries each double's shortest repr, which reads back to the same bits.
            assert np.array_equal(np.asarray(whole.json()["predictions"]), expected)
            for index in range(0, len(test), 11):
                one = server.invoke(_split(test.iloc[index : index + 1]))
                assert one.json()["predictions"] == expected[index : index + 1].tolist()


def _split(frame) -> bytes:
    return json.dumps({"columns": list(frame.columns), "data": frame.values.tolist()}).encode()
