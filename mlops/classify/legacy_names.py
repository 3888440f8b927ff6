"""The names and arguments of Keras 2 and TensorFlow 1 that Keras 3 and TensorFlow 2 no longer have: what
tells legacy code (see rules.py)."""

from __future__ import annotations


def words(text: str) -> list[str]:
    return text.split()


# Keras 2 names that Keras 3 no longer has (relative to keras. / tensorflow.keras.), as prefixes.
KERAS2_NAMES: tuple[str, ...] = tuple(
    words("""utils.np_utils utils.vis_utils utils.multi_gpu_model utils.generic_utils layers.convolutional
    layers.core layers.pooling layers.recurrent layers.normalization layers.merge layers.advanced_activations
    layers.embeddings layers.wrappers layers.noise layers.local layers.Merge layers.CuDNNLSTM layers.CuDNNGRU
    layers.Deconvolution2D layers.AtrousConvolution2D layers.LocallyConnected1D layers.LocallyConnected2D
    wrappers.scikit_learn engine legacy optimizers.legacy preprocessing.image.ImageDataGenerator
    preprocessing.text preprocessing.sequence.TimeseriesGenerator backend.tensorflow_backend
    backend.set_session backend.get_session backend.set_image_dim_ordering backend.image_dim_ordering
    optimizers.adam optimizers.sgd optimizers.rmsprop optimizers.adagrad optimizers.adadelta""")
)
# TensorFlow 1 names (relative to tensorflow.): they run only on the legacy image's compat layer.
TF1_NAMES: tuple[str, ...] = tuple(
    words("""compat.v1 placeholder Session InteractiveSession contrib layers estimator global_variables_initializer
    train.AdamOptimizer train.GradientDescentOptimizer train.MomentumOptimizer train.RMSPropOptimizer
    get_variable variable_scope""")
)
KERAS2_METHODS = frozenset(words("fit_generator evaluate_generator predict_generator predict_classes"))
# Keyword arguments of Keras 1/2 that Keras 3 rejects, on any Keras call (nb_* on any call at all).
KERAS2_KEYWORDS = frozenset(
    words("""nb_epoch samples_per_epoch nb_val_samples nb_filter nb_row nb_col border_mode subsample W_regularizer
    b_regularizer dim_ordering output_dim init""")
)
