#!/usr/bin/python3
"""Optuna's trial throughput on the workload of bench/load_gen.cc.

N worker processes share one Optuna study in a temporary SQLite file (Optuna's RDBStorage
through SQLAlchemy). Until the study has T trials, each worker repeats these steps:
1. ask, and suggest the eight hyperparameters of load_gen's grid from the same values;
2. report EPOCHS x METRICS intermediate values, one `trial.report` per metric row at
   steps 0, 1, 2, ...;
3. tell the final value.
Prints the trials per second over the whole run.

`trial.report` stores one float per step, so 40 metric rows become 40 reports: the
closest equivalent of load_gen's 40 stored metric rows. Each report is its own storage
transaction, whereas load_gen sends the 8 rows of an epoch in one stream update that the
coordinator stores in one transaction. The hyperparameters come from RandomSampler,
since load_gen's sweep also draws a random sample of its grid and TPE's cost grows with
the number of finished trials. Optuna's defaults are kept otherwise: SQLite's rollback
journal, no heartbeat.

Run with Debian's interpreter, which has python3-optuna 3.1:
    /usr/bin/python3 bench/optuna_load.py --workers 16 --trials 200
"""

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

import optuna

GRID = {
    "conv1_depth": list(range(1, 101)),
    "conv2_depth": list(range(1, 101)),
    "dense_layer_units": list(range(1, 101)),
    "batch_size": [64, 128],
    "learning_rate": [0.001, 0.01],
    "keep_prob": [0.5, 1.0],
    "augmentation": ["none", "flip_crop"],
}


def storage_for(url):
    # SQLite allows one writer at a time: wait for the lock instead of failing after
    # SQLAlchemy's default of 5 s.
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 300}})


def run_worker(url, study_name, trials, rows_per_trial, epochs, ready, counter):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage_for(url),
        sampler=optuna.samplers.RandomSampler(seed=os.getpid()),
    )
    ready.wait()
    while True:
        # Claims a trial slot so the processes together run exactly `trials` trials.
        with counter.get_lock():
            if counter.value >= trials:
                return
            counter.value += 1
        trial = study.ask()
        trial.suggest_int("conv1_depth", 1, 100)
        trial.suggest_int("conv2_depth", 1, 100)
        trial.suggest_int("dense_layer_units", 1, 100)
        trial.suggest_categorical("batch_size", GRID["batch_size"])
        trial.suggest_categorical("learning_rate", GRID["learning_rate"])
        trial.suggest_categorical("keep_prob", GRID["keep_prob"])
        trial.suggest_categorical("augmentation", GRID["augmentation"])
        trial.suggest_int("num_epochs", epochs, epochs)
        for step in range(rows_per_trial):
            trial.report(0.5 + step / (2 * rows_per_trial), step)
        study.tell(trial, 0.9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16, help="number of worker processes")
    parser.add_argument("--trials", type=int, default=200, help="number of trials over all processes")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trial; one report per metric per epoch")
    parser.add_argument(
        "--metrics-per-epoch", type=int, default=8, help="metrics reported per epoch"
    )
    args = parser.parse_args()
    if args.workers < 1 or args.trials < 1 or args.epochs < 1 or args.metrics_per_epoch < 1:
        parser.error("--workers, --trials, --epochs and --metrics-per-epoch must be positive")

    directory = tempfile.mkdtemp(prefix="sweep-optuna-load-")
    try:
        url = "sqlite:///" + os.path.join(directory, "optuna.db")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name="load", storage=storage_for(url))
        rows_per_trial = args.epochs * args.metrics_per_epoch
        context = multiprocessing.get_context("fork")
        # Every process has imported Optuna and opened the study before the clock starts.
        ready = context.Barrier(args.workers + 1)
        counter = context.Value("q", 0)
        processes = [
            context.Process(
                target=run_worker,
                args=(url, "load", args.trials, rows_per_trial, args.epochs, ready, counter),
            )
            for _ in range(args.workers)
        ]
        for process in processes:
            process.start()
        ready.wait()
        began = time.monotonic()
        for process in processes:
            process.join()
        elapsed = time.monotonic() - began
        exit_codes = [process.exitcode for process in processes]
        if any(code != 0 for code in exit_codes):
            print(f"optuna_load: worker processes failed, exit codes {exit_codes}", file=sys.stderr)
            return 1

        complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if complete != args.trials:
            print(
                f"optuna_load: {complete} of {args.trials} trials completed", file=sys.stderr
            )
            return 1
        print(
            f"optuna_load: workers={args.workers} trials={complete} "
            f"rows_per_trial={rows_per_trial} elapsed_s={elapsed:.3f}"
        )
        print(
            f"throughput: trials_per_s={complete / elapsed:.2f} "
            f"reports_per_s={complete * rows_per_trial / elapsed:.0f}"
        )
        return 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
