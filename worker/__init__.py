"""tuneforge's bundled workers (Celery tasks and objectives); arrives with the worker issue."""
