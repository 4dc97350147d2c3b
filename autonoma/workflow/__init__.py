"""The workflow: plan and task models, DAG checks, scheduling and the governor's pure core."""
