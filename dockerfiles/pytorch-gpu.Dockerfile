# mlops-pytorch-gpu: mlops-pytorch for trials given GPUs (--gpus N on a machine with NVIDIA GPUs and the NVIDIA
# container toolkit). The index's torch wheel is already the CUDA build, so the packages are mlops-pytorch's,
# installed by the same lines (the engine reuses those layers: this image costs no more disk); what it adds is
# the NVIDIA container runtime's variables. `mlops images build` builds it only when named.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg MPLCONFIGDIR=/tmp/matplotlib HOME=/tmp \
    KERAS_HOME=/cache/keras SCIKIT_LEARN_DATA=/cache/scikit_learn_data TORCH_HOME=/cache/torch
# The .pyc files pip writes stay: a read-only container would compile every import on every trial.
RUN pip install torch==2.14.1 torchvision==0.29.1 scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1 \
        pandas==3.1.1 matplotlib==3.11.2 kneed==0.9.0
RUN useradd --create-home --uid 1000 trainer && mkdir -p /cache /code /trial && chown trainer /cache /trial \
    && chmod 0755 /root  # the trainer reaches the data mounted at /root/train_set (mlops.yaml data:)
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY mlops_harness/ /opt/mlops/mlops_harness/
USER trainer
WORKDIR /trial
ENTRYPOINT ["python", "/opt/mlops/mlops_harness"]
