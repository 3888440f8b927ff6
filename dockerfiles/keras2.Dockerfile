# mlops-keras2: TensorFlow 2.15 with Keras 2, for legacy code (keras.utils.np_utils, fit_generator, lr=, ...).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg MPLCONFIGDIR=/tmp/matplotlib TF_CPP_MIN_LOG_LEVEL=2 HOME=/tmp \
    KERAS_HOME=/cache/keras SCIKIT_LEARN_DATA=/cache/scikit_learn_data TORCH_HOME=/cache/torch
# The .pyc files pip writes stay: a read-only container would compile every import on every trial.
RUN pip install tensorflow-cpu==2.15.1 "numpy==1.26.4" scikit-learn==1.5.2 scipy==1.13.1 pandas==2.2.3 \
        matplotlib==3.9.4 kneed==0.8.5
RUN useradd --create-home --uid 1000 trainer && mkdir -p /cache /code /trial && chown trainer /cache /trial \
    && chmod 0755 /root  # the trainer reaches the data mounted at /root/train_set (mlops.yaml data:)
COPY mlops_harness/ /opt/mlops/mlops_harness/
USER trainer
WORKDIR /trial
ENTRYPOINT ["python", "/opt/mlops/mlops_harness"]
