# The app image: Python 3.11 with the locked dependencies (uv.lock), no dev tools.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev
ENV PATH="/opt/venv/bin:$PATH"
EXPOSE 8000
CMD ["sh", "-c", "emergency migrate && emergency seed demo && emergency serve --host 0.0.0.0 --port 8000"]
