"""The container's entry point: `docker run IMAGE train`, as SageMaker starts training images."""

from __future__ import annotations

import logging
import os
import sys

USAGE = "usage: docker run IMAGE train  (this is the training image; SageMaker passes 'train')"


def main(argv: list[str] | None = None) -> int:
    """Run the training job when asked to `train`; anything else is a usage error."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["train"]:
        print(f"unexpected arguments {' '.join(args) or '(none)'}: {USAGE}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from mlstack.training.paths import OptML
    from mlstack.training.script_mode import run_job

    return run_job(OptML())  # the user's script (sagemaker_program), else the built-in one


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: leave at once, without waiting on library exit hooks once the job has
    # recorded its outcome (matters after SIGTERM).
    os._exit(code)
