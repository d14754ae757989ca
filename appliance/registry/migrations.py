"""Numbered schema migrations, applied at open. Never edit a released migration: add the next one.

Each runs in one transaction together with the row that records it (sqlite-utils' Migrations),
inside the writer's `BEGIN IMMEDIATE`, so concurrent openers cannot both apply it.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("appliance")


def _execute_script(db: sqlite_utils.Database, script: str) -> None:
    # Not conn.executescript(): it COMMITs first, which would split the migration from its record.
    for statement in script.split(";\n"):
        if statement.strip():
            db.execute(statement)


@MIGRATIONS(name="0001_initial")
def _initial(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );

        CREATE TABLE datasets (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (workspace_id, name)
        );

        -- A version is identified by the sha256 of its manifest (stored in the artifact store).
        CREATE TABLE dataset_versions (
            digest TEXT NOT NULL,
            dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            file_count INTEGER NOT NULL,
            total_bytes INTEGER NOT NULL,
            row_count INTEGER NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            parent_digest TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (dataset_id, digest),
            UNIQUE (dataset_id, version)
        );

        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL DEFAULT '',
            recipe TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK (
                status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')
            ),
            params TEXT NOT NULL DEFAULT '{}',
            dataset_id TEXT REFERENCES datasets(id) ON DELETE SET NULL,
            dataset_digest TEXT,
            code_hash TEXT,
            seed INTEGER,
            library_versions TEXT NOT NULL DEFAULT '{}',
            parent_model_version_id TEXT,
            log_path TEXT,
            error TEXT,
            pid INTEGER,
            created_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT
        );
        CREATE INDEX runs_by_workspace ON runs (workspace_id, created_at);

        CREATE TABLE run_metrics (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            step INTEGER NOT NULL,
            value REAL NOT NULL,
            logged_at TEXT NOT NULL
        );
        CREATE INDEX run_metrics_by_run ON run_metrics (run_id, key, step);

        CREATE TABLE run_artifacts (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            logged_at TEXT NOT NULL,
            PRIMARY KEY (run_id, path)
        );

        CREATE TABLE models (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            UNIQUE (workspace_id, name)
        );

        -- Versions are immutable: the folder under models/ is moved into place before the row
        -- is written, and neither changes afterwards.
        CREATE TABLE model_versions (
            id TEXT PRIMARY KEY,
            model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            path TEXT NOT NULL,
            digest TEXT NOT NULL,
            size INTEGER NOT NULL,
            metrics TEXT NOT NULL DEFAULT '{}',
            run_id TEXT REFERENCES runs(id) ON DELETE SET NULL,
            dataset_id TEXT,
            dataset_digest TEXT,
            parent_version_id TEXT,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            UNIQUE (model_id, version)
        );

        CREATE TABLE model_aliases (
            model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            alias TEXT NOT NULL,
            version_id TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (model_id, alias)
        );

        CREATE TABLE deployments (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            endpoint TEXT NOT NULL,
            model_version_id TEXT NOT NULL REFERENCES model_versions(id),
            quantization TEXT NOT NULL DEFAULT 'none',
            device TEXT NOT NULL DEFAULT 'auto',
            max_batch_size INTEGER NOT NULL DEFAULT 8,
            max_batch_wait_ms INTEGER NOT NULL DEFAULT 5,
            status TEXT NOT NULL DEFAULT 'active',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (workspace_id, endpoint)
        );

        -- Every change to a deployment or alias is an event; DORA metrics are computed from them.
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '',
            model_version_id TEXT,
            deployment_id TEXT,
            detail TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE INDEX events_by_workspace ON events (workspace_id, created_at);
        """,
    )


@MIGRATIONS(name="0002_recipes_and_progress")
def _recipes_and_progress(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        -- Recipes a user registered in a workspace (built-in ones are found on disk).
        CREATE TABLE recipes (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            code_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (workspace_id, name)
        );
        -- The latest progress a training child reported: {"step", "total", "at"} as JSON.
        ALTER TABLE runs ADD COLUMN progress TEXT;
        -- The model a run registers its version under.
        ALTER TABLE runs ADD COLUMN model_name TEXT;
        """,
    )


@MIGRATIONS(name="0003_model_version_recipe")
def _model_version_recipe(db: sqlite_utils.Database) -> None:
    # The recipe whose evaluate() and load() understand this version's folder. Versions from
    # recipe runs get their run's recipe; hand-registered ones may name it.
    db.execute("ALTER TABLE model_versions ADD COLUMN recipe TEXT")
    db.execute(
        "UPDATE model_versions SET recipe = (SELECT r.recipe FROM runs r WHERE r.id = run_id)"
        " WHERE run_id IS NOT NULL"
    )


@MIGRATIONS(name="0004_monitoring")
def _monitoring(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        -- One row per answered (or failed) prediction, written in batches by the capture thread.
        -- Inputs are kept only as features and, for a sample, a small re-encoded thumbnail
        -- (re-encoding from pixels drops EXIF and every other piece of metadata).
        CREATE TABLE predictions (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            endpoint TEXT NOT NULL,
            model_version_id TEXT,
            created_at TEXT NOT NULL,
            latency_ms REAL,
            queue_ms REAL,
            inference_ms REAL,
            batch_size INTEGER,
            width REAL,
            height REAL,
            brightness REAL,
            brightness_p99 REAL,
            contrast REAL,
            sharpness REAL,
            keywords TEXT NOT NULL DEFAULT '',
            description TEXT,
            confidence REAL,
            warnings TEXT NOT NULL DEFAULT '[]',
            error TEXT,
            thumbnail BLOB
        );
        CREATE INDEX predictions_by_endpoint ON predictions (workspace_id, endpoint, created_at);
        CREATE INDEX predictions_by_time ON predictions (created_at);

        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            prediction_id TEXT NOT NULL REFERENCES predictions(id) ON DELETE CASCADE,
            rating INTEGER CHECK (rating BETWEEN 1 AND 5),
            thumb TEXT CHECK (thumb IN ('up', 'down')),
            comment TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE INDEX feedback_by_prediction ON feedback (prediction_id);

        -- The input features (and output words) of a model version's training data, as JSON:
        -- what drift compares live traffic with.
        CREATE TABLE reference_profiles (
            model_version_id TEXT PRIMARY KEY REFERENCES model_versions(id) ON DELETE CASCADE,
            profile TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        -- Periodic psutil samples, bounded (the sampler deletes the oldest beyond a limit).
        CREATE TABLE system_metrics (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sampled_at TEXT NOT NULL,
            process_cpu_percent REAL,
            machine_cpu_percent REAL,
            process_rss_bytes INTEGER,
            machine_memory_percent REAL,
            disk_used_percent REAL,
            disk_free_bytes INTEGER,
            open_files INTEGER,
            threads INTEGER,
            gpu_memory_bytes INTEGER,
            gpu_utilization_percent REAL
        );

        -- The current state of each alert rule per endpoint; a change of state is an event.
        CREATE TABLE alerts (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            endpoint TEXT NOT NULL,
            rule TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('firing', 'ok')),
            value REAL,
            threshold REAL NOT NULL,
            since TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (workspace_id, endpoint, rule)
        );
        """,
    )


@MIGRATIONS(name="0005_jobs")
def _jobs(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        -- Scheduled and triggered work, as data: the scheduler is rebuilt from these rows at
        -- start (never from pickled callables). `trigger` and `params` are JSON.
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (
                kind IN ('retrain', 'dataset_watch', 'alert_trigger', 'batch_predict',
                         'housekeeping')
            ),
            target TEXT NOT NULL DEFAULT '',
            trigger TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (workspace_id, name)
        );

        -- Each time a job ran (or was asked to): what caused it and how it ended.
        CREATE TABLE job_runs (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            cause TEXT NOT NULL,
            status TEXT NOT NULL CHECK (
                status IN ('running', 'succeeded', 'failed', 'skipped', 'awaiting_approval')
            ),
            run_id TEXT REFERENCES runs(id) ON DELETE SET NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            started_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE INDEX job_runs_by_job ON job_runs (job_id, started_at);

        -- The job and trigger that caused a training run, when one did.
        ALTER TABLE runs ADD COLUMN job_id TEXT;
        ALTER TABLE runs ADD COLUMN cause TEXT;
        """,
    )


@MIGRATIONS(name="0006_workspace_created_by")
def _workspace_created_by(db: sqlite_utils.Database) -> None:
    # What made a workspace: '' for a person (CLI, TUI, Python client), 'demo' for
    # `appliance demo`, which deletes and remakes only a workspace it made itself.
    db.execute("ALTER TABLE workspaces ADD COLUMN created_by TEXT NOT NULL DEFAULT ''")


@MIGRATIONS(name="0007_task_neutral_predictions")
def _task_neutral_predictions(db: sqlite_utils.Database) -> None:
    # Captures of any task: the six image feature columns become one JSON object of whatever
    # numeric features the task declares, and `output` holds the task's answer fields as JSON
    # (`description` stays as the answer's one-line summary, for listings and search). Every
    # existing row keeps its values (json_patch drops the features it had none of) and its
    # feedback (the rows are updated in place, never copied).
    _execute_script(
        db,
        """
        ALTER TABLE predictions ADD COLUMN features TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE predictions ADD COLUMN output TEXT;
        UPDATE predictions SET
            features = json_patch('{}', json_object(
                'width', width, 'height', height, 'brightness', brightness,
                'brightness_p99', brightness_p99, 'contrast', contrast, 'sharpness', sharpness)),
            output = CASE WHEN description IS NULL THEN NULL
                          ELSE json_object('description', description) END;
        ALTER TABLE predictions DROP COLUMN width;
        ALTER TABLE predictions DROP COLUMN height;
        ALTER TABLE predictions DROP COLUMN brightness;
        ALTER TABLE predictions DROP COLUMN brightness_p99;
        ALTER TABLE predictions DROP COLUMN contrast;
        ALTER TABLE predictions DROP COLUMN sharpness
        """,
    )


@MIGRATIONS(name="0008_model_version_runtime")
def _model_version_runtime(db: sqlite_utils.Database) -> None:
    # How a version is served and what it is: `runtime` 'recipe' (its recipe's load()) or
    # 'huggingface' (its own config, no recipe), its `task`, and `info` as JSON (architecture,
    # parameters, weight bytes, labels, quantization modes), read from the folder at register.
    # Versions from before keep working: those with a recipe are served by it, their task is
    # the recipe's, and their info is empty (`model show` says less about them).
    _execute_script(
        db,
        """
        ALTER TABLE model_versions ADD COLUMN runtime TEXT;
        ALTER TABLE model_versions ADD COLUMN task TEXT;
        ALTER TABLE model_versions ADD COLUMN info TEXT NOT NULL DEFAULT '{}';
        UPDATE model_versions SET runtime = 'recipe' WHERE recipe IS NOT NULL
        """,
    )


@MIGRATIONS(name="0009_trust")
def _trust(db: sqlite_utils.Database) -> None:
    # A version's calibration (appliance/trust/): the calibrator, its uncertain threshold and
    # what they were measured at, as JSON, with the reference embeddings of its training rows
    # (float16 rows of `dims` values) that the distance from the training data and embedding
    # drift compare with. A version without a row serves its model's own confidence.
    # Captured predictions keep their embedding (float16) for embedding drift.
    _execute_script(
        db,
        """
        CREATE TABLE version_trust (
            model_version_id TEXT PRIMARY KEY REFERENCES model_versions(id),
            trust TEXT NOT NULL,
            reference BLOB,
            dims INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        ALTER TABLE predictions ADD COLUMN embedding BLOB
        """,
    )


@MIGRATIONS(name="0010_review")
def _review(db: sqlite_utils.Database) -> None:
    # The review queue (appliance/review/): a served answer a person should look at (uncertain,
    # or rated low soon after), with its input kept (an image as a PNG file under the home,
    # `input_file`; a text in `input_text`), until it is reviewed and exported into a dataset
    # version (`exported_to`) or trimmed. No foreign key to `predictions`: an item outlives a
    # prediction pruned for `capture_max_rows`, and goes by age with the captures instead.
    _execute_script(
        db,
        """
        CREATE TABLE review_items (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            endpoint TEXT NOT NULL,
            prediction_id TEXT NOT NULL UNIQUE,
            model_version_id TEXT,
            reason TEXT NOT NULL CHECK (reason IN ('uncertain', 'low_rating')),
            kind TEXT NOT NULL CHECK (kind IN ('image', 'text')),
            input_file TEXT,
            input_text TEXT,
            fields TEXT NOT NULL DEFAULT '{}',
            answer TEXT,
            answer_field TEXT NOT NULL CHECK (answer_field IN ('text', 'label')),
            confidence REAL,
            warnings TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'corrected', 'dismissed')),
            correction TEXT,
            reviewed_at TEXT,
            reviewed_by TEXT,
            exported_to TEXT,
            bytes INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE INDEX review_by_endpoint
            ON review_items (workspace_id, endpoint, status, created_at);
        CREATE INDEX review_by_time ON review_items (created_at)
        """,
    )


@MIGRATIONS(name="0011_platform_feedback")
def _platform_feedback(db: sqlite_utils.Database) -> None:
    # What people think of the platform itself (appliance/platform/feedback.py), not of a
    # prediction: a 1-5 rating with an optional comment, from the CLI, the TUI or HTTP. `user`
    # names who gave it where known ('cli:alice', 'tui:alice', 'http'); `workspace_id` the team
    # it speaks for, when one was named (NULL: the platform as a whole).
    _execute_script(
        db,
        """
        CREATE TABLE platform_feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
            comment TEXT NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
            source TEXT NOT NULL DEFAULT '',
            user TEXT NOT NULL DEFAULT '',
            workspace_id TEXT REFERENCES workspaces(id) ON DELETE SET NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX platform_feedback_by_time ON platform_feedback (created_at)
        """,
    )


@MIGRATIONS(name="0012_dataset_columns")
def _dataset_columns(db: sqlite_utils.Database) -> None:
    # A dataset version's columns, as JSON {column: rows giving it a value} sorted by name
    # (appliance/datasets/columns.py), so a schema change (a `keywords` column) shows in
    # `dataset versions` and `dataset diff`. Existing versions are counted from their stored
    # metadata.jsonl, in the artifact store beside this registry (<home>/artifacts); one whose
    # metadata cannot be read keeps {} and a log line: a missing blob never fails the upgrade.
    import logging
    from pathlib import Path

    from appliance.artifacts import ArtifactStore
    from appliance.datasets.columns import count_columns, encode, stored_rows
    from appliance.errors import ApplianceError

    db.execute("ALTER TABLE dataset_versions ADD COLUMN columns TEXT NOT NULL DEFAULT '{}'")
    versions = db.execute("SELECT dataset_id, digest FROM dataset_versions").fetchall()
    registry_file = next((r[2] for r in db.execute("PRAGMA database_list") if r[1] == "main"), "")
    if not versions or not registry_file:
        return
    store = ArtifactStore(Path(registry_file).parent / "artifacts")
    for dataset_id, digest in versions:
        try:
            columns = encode(count_columns(stored_rows(store, digest)))
        except (ApplianceError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logging.getLogger("appliance.registry").warning(
                "dataset version %s: its metadata.jsonl cannot be read (%s); its columns stay {}",
                digest[:12], exc,
            )  # fmt: skip
            continue
        db.execute(
            "UPDATE dataset_versions SET columns = ? WHERE dataset_id = ? AND digest = ?",
            [columns, dataset_id, digest],
        )


@MIGRATIONS(name="0013_feedback_ignored_keywords")
def _feedback_ignored_keywords(db: sqlite_utils.Database) -> None:
    # Feedback may name the seller keywords a description left out (a JSON list, each one of the
    # keywords the prediction was given): what keyword adherence misses on live traffic.
    db.execute("ALTER TABLE feedback ADD COLUMN ignored_keywords TEXT NOT NULL DEFAULT '[]'")


@MIGRATIONS(name="0014_version_trust_cascade")
def _version_trust_cascade(db: sqlite_utils.Database) -> None:
    # 0009 made version_trust refer to model_versions without ON DELETE: deleting a workspace
    # (or a model) whose versions were calibrated failed on the foreign key. The table is built
    # again with the cascade (SQLite cannot alter a foreign key in place), its rows kept.
    _execute_script(
        db,
        """
        CREATE TABLE version_trust_new (
            model_version_id TEXT PRIMARY KEY
                REFERENCES model_versions(id) ON DELETE CASCADE,
            trust TEXT NOT NULL,
            reference BLOB,
            dims INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        INSERT INTO version_trust_new SELECT model_version_id, trust, reference, dims, created_at
            FROM version_trust;
        DROP TABLE version_trust;
        ALTER TABLE version_trust_new RENAME TO version_trust
        """,
    )


@MIGRATIONS(name="0015_job_run_lanes")
def _job_run_lanes(db: sqlite_utils.Database) -> None:
    # The scheduler's rule of one run at a time per lane (a job, or all retrains of one model)
    # held only in one process's memory: a CLI `job run-now` beside a server, or two processes,
    # could run the same lane twice. Each run now records its lane and the process running it
    # (pid and host), so starting a run checks the registry, and a row left `running` by a
    # process that is gone is told apart from one still running.
    _execute_script(
        db,
        """
        ALTER TABLE job_runs ADD COLUMN lane TEXT;
        ALTER TABLE job_runs ADD COLUMN pid INTEGER;
        ALTER TABLE job_runs ADD COLUMN host TEXT;
        UPDATE job_runs SET lane = (
            SELECT CASE WHEN jobs.kind = 'retrain'
                THEN 'retrain:' || jobs.workspace_id || ':' || jobs.target
                ELSE 'job:' || jobs.id END
            FROM jobs WHERE jobs.id = job_runs.job_id
        );
        CREATE INDEX job_runs_by_lane ON job_runs (lane, status)
        """,
    )


@MIGRATIONS(name="0016_backup_jobs")
def _backup_jobs(db: sqlite_utils.Database) -> None:
    # The `backup` job kind (appliance/backup/retention.py). The kind's CHECK is part of the
    # jobs table, which SQLite cannot alter: the table is built again with it, rows kept. Inside
    # this transaction foreign keys stay on, and dropping `jobs` would cascade into job_runs,
    # so job_runs is built again too, referring to the new table, before the old ones go; the
    # rename then points its foreign key at `jobs`.
    _execute_script(
        db,
        """
        CREATE TABLE jobs_new (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (
                kind IN ('retrain', 'dataset_watch', 'alert_trigger', 'batch_predict',
                         'housekeeping', 'backup')
            ),
            target TEXT NOT NULL DEFAULT '',
            trigger TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (workspace_id, name)
        );
        INSERT INTO jobs_new (id, workspace_id, name, kind, target, trigger, params, enabled,
                              created_at, updated_at)
            SELECT id, workspace_id, name, kind, target, trigger, params, enabled, created_at,
                   updated_at FROM jobs;
        CREATE TABLE job_runs_new (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs_new(id) ON DELETE CASCADE,
            cause TEXT NOT NULL,
            status TEXT NOT NULL CHECK (
                status IN ('running', 'succeeded', 'failed', 'skipped', 'awaiting_approval')
            ),
            run_id TEXT REFERENCES runs(id) ON DELETE SET NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            started_at TEXT NOT NULL,
            ended_at TEXT,
            lane TEXT,
            pid INTEGER,
            host TEXT
        );
        INSERT INTO job_runs_new (id, job_id, cause, status, run_id, detail, started_at,
                                  ended_at, lane, pid, host)
            SELECT id, job_id, cause, status, run_id, detail, started_at, ended_at, lane, pid,
                   host FROM job_runs;
        DROP TABLE job_runs;
        DROP TABLE jobs;
        ALTER TABLE jobs_new RENAME TO jobs;
        ALTER TABLE job_runs_new RENAME TO job_runs;
        CREATE INDEX job_runs_by_job ON job_runs (job_id, started_at);
        CREATE INDEX job_runs_by_lane ON job_runs (lane, status)
        """,
    )


@MIGRATIONS(name="0017_users")
def _users(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        -- Users and the salted hash of their token (appliance/access/users.py).
        CREATE TABLE users (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('viewer', 'predictor', 'developer', 'admin')),
            workspace_id TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
            salt TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL DEFAULT '',
            revoked_at TEXT
        );
        CREATE UNIQUE INDEX users_active_name ON users (name) WHERE revoked_at IS NULL;
        -- Who made each change (appliance/access/actor.py): a user, `admin` or `local`.
        ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT 'local';
        -- Every write over HTTP: who, what, and how it was answered.
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            status INTEGER NOT NULL,
            workspace TEXT,
            client TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_by_workspace ON audit (workspace, created_at)
        """,
    )


@MIGRATIONS(name="0018_deploy_backend_instances_keep_alive")
def _deploy_backend_instances_keep_alive(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        -- appliance/serving/options.py: what runs the model, how many copies, and when it is
        -- unloaded while idle.
        ALTER TABLE deployments ADD COLUMN backend TEXT NOT NULL DEFAULT 'auto';
        ALTER TABLE deployments ADD COLUMN instances INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE deployments ADD COLUMN instance_kind TEXT NOT NULL DEFAULT 'thread';
        ALTER TABLE deployments ADD COLUMN keep_alive_s INTEGER NOT NULL DEFAULT 0
        """,
    )


@MIGRATIONS(name="0019_run_executor")
def _run_executor(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        -- appliance/runs/executors/: where the run trains ('local' or 'ray'), and what that
        -- executor says of it as JSON (Ray: the cluster's address, the Ray job id, the worker).
        ALTER TABLE runs ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
        ALTER TABLE runs ADD COLUMN executor_ref TEXT NOT NULL DEFAULT '{}'
        """,
    )


@MIGRATIONS(name="0020_review_unfamiliar")
def _review_unfamiliar(db: sqlite_utils.Database) -> None:
    # The `unfamiliar` review reason (appliance/review/keeper.py): an input farther from the
    # training rows than its version's held-out rows go. The reason's CHECK is part of the
    # table, which SQLite cannot alter: it is built again with it, rows kept (nothing refers to
    # review_items).
    _execute_script(
        db,
        """
        CREATE TABLE review_items_new (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            endpoint TEXT NOT NULL,
            prediction_id TEXT NOT NULL UNIQUE,
            model_version_id TEXT,
            reason TEXT NOT NULL CHECK (reason IN ('uncertain', 'low_rating', 'unfamiliar')),
            kind TEXT NOT NULL CHECK (kind IN ('image', 'text')),
            input_file TEXT,
            input_text TEXT,
            fields TEXT NOT NULL DEFAULT '{}',
            answer TEXT,
            answer_field TEXT NOT NULL CHECK (answer_field IN ('text', 'label')),
            confidence REAL,
            warnings TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'corrected', 'dismissed')),
            correction TEXT,
            reviewed_at TEXT,
            reviewed_by TEXT,
            exported_to TEXT,
            bytes INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        INSERT INTO review_items_new SELECT id, workspace_id, endpoint, prediction_id,
            model_version_id, reason, kind, input_file, input_text, fields, answer, answer_field,
            confidence, warnings, status, correction, reviewed_at, reviewed_by, exported_to,
            bytes, created_at FROM review_items;
        DROP TABLE review_items;
        ALTER TABLE review_items_new RENAME TO review_items;
        CREATE INDEX review_by_endpoint
            ON review_items (workspace_id, endpoint, status, created_at);
        CREATE INDEX review_by_time ON review_items (created_at)
        """,
    )
