# One image for all four processes; docker-compose.yml picks the module to run.
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app:/app/generated

COPY requirements.txt requirements-dev.txt ./
RUN pip install --no-cache-dir -r requirements.txt mypy-protobuf==5.1.0

COPY protos ./protos
# The gRPC stubs are generated in the image, exactly as `make protos` does on a workstation.
RUN mkdir -p generated && python -m grpc_tools.protoc -I protos \
        --python_out=generated --grpc_python_out=generated \
        --mypy_out=generated --mypy_grpc_out=generated protos/binance/provider/v1/*.proto

COPY service_runtime ./service_runtime
COPY provider_client ./provider_client
COPY provider ./provider
COPY gateway_http ./gateway_http
COPY gateway_mcp ./gateway_mcp
COPY exchange_sim ./exchange_sim

RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app /data
USER app
