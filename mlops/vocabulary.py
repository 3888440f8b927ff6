"""The layers and estimators mlops knows by name, and what each one is.

One vocabulary for the two readers of model code: the classifier (:mod:`mlops.classify`) turns a layer's
:class:`Role` into the :class:`Family` of the model (:data:`FAMILY_OF_ROLE`), and the tweaks
(``tweak/facts.py``) turn it into the kinds of layer their codemods edit. Names are matched by their last
dotted part (``keras.layers.Conv2D`` and ``tf.keras.layers.Conv2D`` are both ``Conv2D``); the classifier
checks the module they come from, the tweaks only the name. Standard library only.
"""

from __future__ import annotations

import enum


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


class Role(enum.StrEnum):
    """What a layer does to its input. A role says what a layer's arguments mean and how it changes the
    shape of what flows through it; what the role says about the model as a whole is :data:`FAMILY_OF_ROLE`."""

    CONVOLUTION = "convolution"  # (filters, kernel_size): a valid window shrinks the input
    DEPTHWISE_CONVOLUTION = "depthwise convolution"  # (kernel_size, depth_multiplier=): no filters argument
    TRANSPOSED_CONVOLUTION = "transposed convolution"  # (filters, kernel_size): grows the input
    RECURRENT_CONVOLUTION = "recurrent convolution"  # ConvLSTM (filters, kernel_size): input has a time axis
    POOLING = "pooling"  # (pool_size): shrinks the input
    GLOBAL_POOLING = "global pooling"  # drops the spatial axes
    FLATTEN = "flatten"
    DENSE = "dense"  # (units)
    EINSUM_DENSE = "einsum dense"  # (equation, output_shape): a dense layer with no units argument
    DROPOUT = "dropout"
    RECURRENT = "recurrent"
    ATTENTION = "attention"
    TRANSFORMER = "transformer"  # a whole encoder or decoder block (PyTorch's nn.Transformer*)
    PREPROCESSING = "preprocessing"  # scales or normalizes the model's input (Rescaling, Normalization)


class Family(enum.StrEnum):
    """What sort of model, one step finer than :class:`~mlops.domain.Kind`."""

    CONVOLUTIONAL = "convolutional"
    DENSE = "dense"
    KMEANS = "kmeans"
    RECURRENT = "recurrent"
    TRANSFORMER = "transformer"
    LOGISTIC = "logistic"
    LINEAR = "linear"
    TREE = "tree"
    FOREST = "forest"
    BOOSTING = "boosting"
    ENSEMBLE = "ensemble"
    NEIGHBORS = "neighbors"
    SVM = "svm"
    NAIVE_BAYES = "naive_bayes"
    CLUSTERING = "clustering"
    MIXTURE = "mixture"
    DISCRIMINANT = "discriminant"
    GAUSSIAN_PROCESS = "gaussian_process"
    DECOMPOSITION = "decomposition"
    NONE = "none"  # trains nothing: an app, a code generator, a data script


# The roles that say what a model is. Pooling, flatten and dropout layers sit in models of any family.
FAMILY_OF_ROLE: dict[Role, Family] = {
    Role.CONVOLUTION: Family.CONVOLUTIONAL,
    Role.DEPTHWISE_CONVOLUTION: Family.CONVOLUTIONAL,
    Role.TRANSPOSED_CONVOLUTION: Family.CONVOLUTIONAL,
    Role.RECURRENT_CONVOLUTION: Family.CONVOLUTIONAL,
    Role.RECURRENT: Family.RECURRENT,
    Role.ATTENTION: Family.TRANSFORMER,
    Role.TRANSFORMER: Family.TRANSFORMER,
    Role.DENSE: Family.DENSE,
    Role.EINSUM_DENSE: Family.DENSE,
}

# Keras layer classes (keras.layers.X, tf.keras.layers.X, keras.layers.convolutional.X), Keras 3 names and
# the Keras 1/2 names legacy code still uses.
KERAS_LAYERS: dict[str, Role] = {
    **dict.fromkeys(
        _names("""Conv1D Conv2D Conv3D Convolution1D Convolution2D Convolution3D SeparableConv1D SeparableConv2D
        SeparableConvolution1D SeparableConvolution2D AtrousConvolution1D AtrousConvolution2D"""),
        Role.CONVOLUTION,
    ),
    **dict.fromkeys(_names("DepthwiseConv1D DepthwiseConv2D"), Role.DEPTHWISE_CONVOLUTION),
    **dict.fromkeys(
        _names("""Conv1DTranspose Conv2DTranspose Conv3DTranspose Convolution2DTranspose Convolution3DTranspose
        Deconvolution2D Deconvolution3D"""),
        Role.TRANSPOSED_CONVOLUTION,
    ),
    **dict.fromkeys(_names("ConvLSTM1D ConvLSTM2D ConvLSTM3D"), Role.RECURRENT_CONVOLUTION),
    **dict.fromkeys(
        _names("""MaxPooling1D MaxPooling2D MaxPooling3D MaxPool1D MaxPool2D MaxPool3D AveragePooling1D
        AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D"""),
        Role.POOLING,
    ),
    **dict.fromkeys(
        _names("""GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D GlobalMaxPooling1D
        GlobalMaxPooling2D GlobalMaxPooling3D GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D
        GlobalMaxPool2D GlobalMaxPool3D"""),
        Role.GLOBAL_POOLING,
    ),
    "Flatten": Role.FLATTEN,
    "Dense": Role.DENSE,
    "EinsumDense": Role.EINSUM_DENSE,
    **dict.fromkeys(
        _names("Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D AlphaDropout GaussianDropout"),
        Role.DROPOUT,
    ),
    **dict.fromkeys(
        _names("LSTM GRU SimpleRNN RNN CuDNNLSTM CuDNNGRU LSTMCell GRUCell SimpleRNNCell"), Role.RECURRENT
    ),
    **dict.fromkeys(_names("MultiHeadAttention GroupQueryAttention"), Role.ATTENTION),
    **dict.fromkeys(_names("Rescaling Normalization"), Role.PREPROCESSING),
}

# PyTorch: the last part of torch.nn.X, torch.nn.modules.conv.X, torch.nn.functional.x.
TORCH_LAYERS: dict[str, Role] = {
    **dict.fromkeys(
        _names("Conv1d Conv2d Conv3d LazyConv1d LazyConv2d LazyConv3d conv1d conv2d conv3d"), Role.CONVOLUTION
    ),
    **dict.fromkeys(
        _names("""ConvTranspose1d ConvTranspose2d ConvTranspose3d LazyConvTranspose1d LazyConvTranspose2d
        LazyConvTranspose3d conv_transpose1d conv_transpose2d conv_transpose3d"""),
        Role.TRANSPOSED_CONVOLUTION,
    ),
    **dict.fromkeys(_names("LSTM GRU RNN LSTMCell GRUCell RNNCell"), Role.RECURRENT),
    **dict.fromkeys(
        _names("""Transformer TransformerEncoder TransformerDecoder TransformerEncoderLayer
        TransformerDecoderLayer"""),
        Role.TRANSFORMER,
    ),
    "MultiheadAttention": Role.ATTENTION,
    **dict.fromkeys(_names("Linear LazyLinear Bilinear"), Role.DENSE),
}

# torchvision.models.<name>: every model whose name starts so is a convolutional network.
TORCHVISION_CONVNETS: tuple[str, ...] = _names(
    """alexnet vgg resnet resnext wide_resnet densenet mobilenet efficientnet squeezenet shufflenet googlenet
    inception mnasnet regnet convnext AlexNet VGG ResNet DenseNet MobileNet EfficientNet SqueezeNet GoogLeNet
    Inception3"""
)

# TensorFlow without Keras: the last part of tf.nn.x, tf.layers.x, tf.compat.v1.layers.x, tf.contrib.layers.x.
TF_LAYERS: dict[str, Role] = {
    **dict.fromkeys(
        _names("conv1d conv2d conv3d separable_conv2d atrous_conv2d convolution Conv1D Conv2D Conv3D"),
        Role.CONVOLUTION,
    ),
    "depthwise_conv2d": Role.DEPTHWISE_CONVOLUTION,
    **dict.fromkeys(_names("conv2d_transpose conv3d_transpose"), Role.TRANSPOSED_CONVOLUTION),
    **dict.fromkeys(_names("dense Dense fully_connected"), Role.DENSE),
    **dict.fromkeys(
        _names("dynamic_rnn static_rnn BasicLSTMCell LSTMCell GRUCell BasicRNNCell"), Role.RECURRENT
    ),
}
# tf.estimator's canned estimators.
TF_ESTIMATORS: dict[str, Family] = {
    "DNNClassifier": Family.DENSE,
    "DNNRegressor": Family.DENSE,
    "LinearClassifier": Family.LINEAR,
    "LinearRegressor": Family.LINEAR,
    "BoostedTreesClassifier": Family.BOOSTING,
    "BoostedTreesRegressor": Family.BOOSTING,
}

# scikit-learn: a class of one of these submodules is an estimator of that family, unless named below.
SKLEARN_MODULES: dict[str, Family] = {
    "linear_model": Family.LINEAR,
    "tree": Family.TREE,
    "ensemble": Family.ENSEMBLE,
    "neighbors": Family.NEIGHBORS,
    "svm": Family.SVM,
    "naive_bayes": Family.NAIVE_BAYES,
    "cluster": Family.CLUSTERING,
    "mixture": Family.MIXTURE,
    "discriminant_analysis": Family.DISCRIMINANT,
    "gaussian_process": Family.GAUSSIAN_PROCESS,
    "kernel_ridge": Family.LINEAR,
    "isotonic": Family.LINEAR,
    "neural_network": Family.DENSE,
    "decomposition": Family.DECOMPOSITION,
    "manifold": Family.DECOMPOSITION,
}
SKLEARN_ESTIMATORS: dict[str, Family] = {
    "KMeans": Family.KMEANS,
    "MiniBatchKMeans": Family.KMEANS,
    "BisectingKMeans": Family.KMEANS,
    "LogisticRegression": Family.LOGISTIC,
    "LogisticRegressionCV": Family.LOGISTIC,
    "BernoulliRBM": Family.DECOMPOSITION,
    "NearestNeighbors": Family.NEIGHBORS,
    "KNeighborsTransformer": Family.DECOMPOSITION,
    "RandomForestClassifier": Family.FOREST,
    "RandomForestRegressor": Family.FOREST,
    "ExtraTreesClassifier": Family.FOREST,
    "ExtraTreesRegressor": Family.FOREST,
    "GradientBoostingClassifier": Family.BOOSTING,
    "GradientBoostingRegressor": Family.BOOSTING,
    "HistGradientBoostingClassifier": Family.BOOSTING,
    "HistGradientBoostingRegressor": Family.BOOSTING,
    "AdaBoostClassifier": Family.BOOSTING,
    "AdaBoostRegressor": Family.BOOSTING,
}
# sklearn.ensemble classes that only wrap other estimators (the estimators inside say what is trained).
SKLEARN_WRAPPERS: tuple[str, ...] = ("Voting", "Stacking", "Bagging")

# The hyperparameters of scikit-learn estimators that the tuner varies, by class name: the strength of
# their regularization (alpha, C), the depth of their trees, how many trees, how many neighbours. A
# LinearRegression has none: its regularized form is a Ridge regression (tweak/codemods/regularize_linear.py).
SKLEARN_TUNED: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(_names("Ridge RidgeClassifier Lasso ElasticNet"), ("alpha",)),
    **dict.fromkeys(_names("LogisticRegression SVC SVR LinearSVC LinearSVR"), ("C",)),
    **dict.fromkeys(_names("DecisionTreeClassifier DecisionTreeRegressor"), ("max_depth",)),
    **dict.fromkeys(
        _names("""RandomForestClassifier RandomForestRegressor ExtraTreesClassifier ExtraTreesRegressor
        GradientBoostingClassifier GradientBoostingRegressor"""),
        ("n_estimators", "max_depth"),
    ),
    **dict.fromkeys(_names("AdaBoostClassifier AdaBoostRegressor"), ("n_estimators",)),
    **dict.fromkeys(_names("KNeighborsClassifier KNeighborsRegressor"), ("n_neighbors",)),
}
