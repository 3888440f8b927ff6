# mlops-keras3: Keras 3 on TensorFlow CPU, for CNN and ANN models written for keras 3 or tf.keras (TF >= 2.16).
# The harness is the entry point: running the image with the code mounted starts the training.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg MPLCONFIGDIR=/tmp/matplotlib TF_CPP_MIN_LOG_LEVEL=2 HOME=/tmp \
    KERAS_HOME=/cache/keras SCIKIT_LEARN_DATA=/cache/scikit_learn_data TORCH_HOME=/cache/torch
# The .pyc files pip writes stay: a read-only container would compile every import on every trial.
RUN pip install tensorflow-cpu==2.21.0 keras==3.15.1 scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1 \
        pandas==3.1.1 matplotlib==3.11.2 kneed==0.9.0
RUN useradd --create-home --uid 1000 trainer && mkdir -p /cache /code /trial && chown trainer /cache /trial \
    && chmod 0755 /root  # the trainer reaches the data mounted at /root/train_set (mlops.yaml data:)
COPY mlops_harness/ /opt/mlops/mlops_harness/
USER trainer
WORKDIR /trial
ENTRYPOINT ["python", "/opt/mlops/mlops_harness"]
