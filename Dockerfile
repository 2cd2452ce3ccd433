# One image for the server, the workers and the CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY api ./api
COPY worker ./worker
COPY migrations ./migrations
COPY clients/python ./clients/python
RUN pip install . && useradd --create-home tuneforge
USER tuneforge

EXPOSE 8000
# `tuneforge serve` by default; the worker service overrides the command.
CMD ["tuneforge", "serve", "--host", "0.0.0.0", "--port", "8000"]
