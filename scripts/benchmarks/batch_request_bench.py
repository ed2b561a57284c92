#!/usr/bin/env python3
"""Where a 1,000-row request's time goes in one worker, against the model's own predict.

For each model (inference_models.py's, fitted on scikit-learn's diabetes set) a 1,000-row
CSV request and the same rows as JSON (dataframe_split) are taken through the inference
app's stages in one process, as a worker takes them: parse, check and convert (prepare),
predict (run), write the answer; and the estimator's own predict on the same rows as a
DataFrame. With --baseline-src (another checkout's src/, e.g. `git archive main src`), the
same timings of that code alternate with this checkout's, round by round, in one run.
Thread pools at 1, as in a worker of 2 on 2 cores.

    .venv/bin/python scripts/benchmarks/batch_request_bench.py --baseline-src /tmp/base/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "src"
ROWS = 1000

STAGES = """
import json, sys, time
from pathlib import Path
from mlstack.serving import decoder, encoder
from mlstack.serving.predictor import load_predictor
folder, seconds = Path(sys.argv[1]), float(sys.argv[2])
predictor = load_predictor(folder / "mlflow")
schema, names = predictor.table_schema, predictor.column_names
csv_body, json_body = (folder / "rows.csv").read_bytes(), (folder / "rows.json").read_bytes()
def ms(call):
    call()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e3
def csv_request():
    work = predictor.prepare(decoder.parse_csv(csv_body, names))
    return encoder.csv_predictions(predictor.run(work))
def json_request():
    work = predictor.prepare(decoder.parse_json(json_body, None, decoder.DEFAULT_LIMITS, schema))
    return encoder.json_predictions(predictor.run(work))
parsed = decoder.parse_csv(csv_body, names)
work = predictor.prepare(parsed)
answer = predictor.run(work)
print(json.dumps({
    "csv parse": ms(lambda: decoder.parse_csv(csv_body, names)),
    "csv prepare": ms(lambda: predictor.prepare(parsed)),
    "run": ms(lambda: predictor.run(work)),
    "csv answer": ms(lambda: encoder.csv_predictions(answer)),
    "csv request": ms(csv_request),
    "json request": ms(json_request),
}))
"""

IN_PROCESS = """
import json, sys, time
import joblib, pandas as pd
folder, seconds = sys.argv[1], float(sys.argv[2])
estimator, rows = joblib.load(f"{folder}/model.joblib"), pd.read_csv(f"{folder}/rows.csv")
estimator.predict(rows)
calls, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    estimator.predict(rows)
    calls += 1
print(json.dumps({"predict": (time.perf_counter() - start) / calls * 1e3}))
"""


def prepare_models(names: list[str], root: Path) -> dict[str, Path]:
    """Each model's folder: its MLflow model, joblib file and the rows as CSV and JSON."""
    import pandas as pd
    from sklearn.datasets import load_diabetes

    sys.path.insert(0, str(HERE))
    import inference_models

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    data = inference_models.Data(features.iloc[:350], features.iloc[350:], target.iloc[:350])
    rows = pd.concat([data.test] * (ROWS // len(data.test) + 1)).iloc[:ROWS]
    folders = {}
    for name in names:
        model = inference_models.make(name, data, root)
        folder = model.mlflow_dir.parent
        (folder / "rows.csv").write_text(rows.to_csv(index=False))
        split = json.loads(rows.to_json(orient="split", index=False, double_precision=15))
        (folder / "rows.json").write_text(json.dumps({"dataframe_split": split}))
        folders[name] = folder
    return folders


def timed(code: str, folder: Path, seconds: float, source: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
    env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    command = [sys.executable, "-c", code, str(folder), str(seconds)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        sys.exit(f"timing failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="pipeline,gradient-boosting")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="per stage and round")
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src/ to compare")
    args = parser.parse_args(argv)
    sources = {"this": SOURCE}
    if args.baseline_src:
        sources = {"baseline": args.baseline_src.resolve(), **sources}
    with tempfile.TemporaryDirectory() as work:
        folders = prepare_models(args.models.split(","), Path(work))
        for name, folder in folders.items():
            runs: dict[str, list[dict[str, float]]] = {label: [] for label in sources}
            predicts = []
            for round_index in range(args.rounds):
                order = list(sources.items())
                for label, source in order if round_index % 2 == 0 else order[::-1]:
                    runs[label].append(timed(STAGES, folder, args.seconds, source))
                predicts.append(timed(IN_PROCESS, folder, args.seconds, SOURCE)["predict"])
            predict = statistics.median(predicts)
            print(f"{name}: {ROWS} rows, medians of {args.rounds} rounds, ms a request")
            print(f"  the estimator's own predict: {predict:.2f} ms")
            for label, results in runs.items():
                stages = {key: statistics.median(r[key] for r in results) for key in results[0]}
                line = ", ".join(f"{key} {value:.2f}" for key, value in stages.items())
                share = predict / stages["csv request"]
                print(f"  {label}: {line}; CSV request rows/s {share:.2f} of predict's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
