"""The batch framework: run-to-completion jobs, one-off or on a cron schedule, Metronome-compatible.

The pure cores, each one module:

    jobs.py       job specs (Metronome v1 JSON), validation (Metronome's 422), the DAG check
    cron.py       cron expressions and their next firing instant in a time zone (DST-aware)
    schedules.py  schedule specs and the decision of which due times to start, mark missed or skip
    runs.py       the run state machine, run ids, and the per-job history of finished runs
    metrics.py    the core's figures as Metronome's Dropwizard-shaped `/v1/metrics` JSON
"""
