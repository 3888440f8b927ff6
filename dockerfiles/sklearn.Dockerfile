# mlops-sklearn: scikit-learn with numpy, scipy and pandas, for KMeans and the classic models.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg MPLCONFIGDIR=/tmp/matplotlib HOME=/tmp SCIKIT_LEARN_DATA=/cache/scikit_learn_data
# The .pyc files pip writes stay: a read-only container would compile every import on every trial.
RUN pip install scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1 pandas==3.1.1 matplotlib==3.11.2 kneed==0.9.0
RUN useradd --create-home --uid 1000 trainer && mkdir -p /cache /code /trial && chown trainer /cache /trial \
    && chmod 0755 /root  # the trainer reaches the data mounted at /root/train_set (mlops.yaml data:)
COPY mlops_harness/ /opt/mlops/mlops_harness/
USER trainer
WORKDIR /trial
ENTRYPOINT ["python", "/opt/mlops/mlops_harness"]
