"""The async jobs door: submit a generation, go away, come back (`/v1/jobs`, and the `/ui` page).

Jobs are rows in a durable store (SQLite by default, PostgreSQL for several replicas); their
outputs are files in an output store (a local directory, or S3-compatible storage). A runner
claims queued jobs and runs each through the same service as the runner routes.
"""
