"""Import name -> the distribution that provides it, from a curated map: never a guess.

An import the code makes is installed only when mlops knows which distribution provides it: a name that
merely exists on the index is how typosquatting works (``from kera.model import ...`` installed the index's
``kera``). The map is

- pipreqs's table of import names whose distribution is called otherwise (``sklearn`` -> ``scikit-learn``,
  ``PIL`` -> ``Pillow``, ``yaml`` -> ``PyYAML``, about 1,150 of them; pipreqs is on PyPI, installed as data
  only, ``--no-deps``, see requirements-nodeps.txt);
- :data:`RENAMED`, renamed ones pipreqs lacks and whose choice matters here (OpenCV's ``cv2``: the headless
  build, which imports in a container without a display's libraries);
- :data:`SAME_NAME`, written by us: the distributions people really import under their own name (numpy,
  seaborn, xgboost, ...).

Any other import is not installed; job 2 says so with the likely intended name (:func:`likely`), and the
trial that imports it fails as ``environment``. A repository that needs something else lists it in its
requirements.txt.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources

from packaging.utils import canonicalize_name

from mlops.errors import RuntimeUnavailable

RENAMED = {
    "cv2": "opencv-python-headless",
    "skimage": "scikit-image",
    "Bio": "biopython",
    "umap": "umap-learn",
    "imblearn": "imbalanced-learn",
    "skopt": "scikit-optimize",
    "bayes_opt": "bayesian-optimization",
    "fitz": "PyMuPDF",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "dotenv": "python-dotenv",
    "faiss": "faiss-cpu",
    "pyro": "pyro-ppl",
    "attr": "attrs",
    "jwt": "PyJWT",
    "mpl_toolkits": "matplotlib",
}
# Distributions imported under their own name, the ones data scientists' code really uses. Written by us.
SAME_NAME = frozenset(
    [
        "numpy",
        "pandas",
        "scipy",
        "matplotlib",
        "seaborn",
        "plotly",
        "bokeh",
        "altair",
        "plotnine",
        "pygal",
        "missingno",
        "folium",
        "wordcloud",
        "tqdm",
        "keras",
        "tensorflow",
        "tensorflow_hub",
        "tensorflow_datasets",
        "tensorflow_probability",
        "tensorflow_addons",
        "tensorflow_text",
        "keras_tuner",
        "keras_nlp",
        "keras_cv",
        "scikeras",
        "tensorboard",
        "tensorboardX",
        "autokeras",
        "torch",
        "torchvision",
        "torchaudio",
        "torchtext",
        "torchmetrics",
        "lightning",
        "pytorch_lightning",
        "timm",
        "einops",
        "transformers",
        "datasets",
        "tokenizers",
        "accelerate",
        "sentencepiece",
        "sentence_transformers",
        "tiktoken",
        "jax",
        "flax",
        "optax",
        "xgboost",
        "lightgbm",
        "catboost",
        "statsmodels",
        "pmdarima",
        "prophet",
        "arch",
        "sktime",
        "tslearn",
        "tsfresh",
        "darts",
        "nltk",
        "gensim",
        "spacy",
        "textblob",
        "emoji",
        "unidecode",
        "ftfy",
        "langdetect",
        "regex",
        "joblib",
        "h5py",
        "networkx",
        "sympy",
        "shap",
        "lime",
        "eli5",
        "optuna",
        "hyperopt",
        "mlflow",
        "wandb",
        "hdbscan",
        "pydot",
        "pydotplus",
        "graphviz",
        "dtreeviz",
        "yellowbrick",
        "mlxtend",
        "category_encoders",
        "feature_engine",
        "kneed",
        "requests",
        "lxml",
        "openpyxl",
        "xlrd",
        "xlsxwriter",
        "pyarrow",
        "polars",
        "numba",
        "numexpr",
        "bottleneck",
        "tables",
        "imageio",
        "albumentations",
        "imgaug",
        "pydicom",
        "nibabel",
        "librosa",
        "soundfile",
        "mahotas",
        "tifffile",
        "patsy",
        "pingouin",
        "lifelines",
        "xarray",
        "netCDF4",
        "zarr",
        "dask",
        "distributed",
        "sqlalchemy",
        "pymongo",
        "redis",
        "boto3",
        "faker",
        "click",
        "rich",
        "colorama",
        "termcolor",
        "tabulate",
        "prettytable",
        "toml",
        "ujson",
        "orjson",
        "simplejson",
        "dill",
        "cloudpickle",
        "pydantic",
        "six",
        "packaging",
        "geopandas",
        "shapely",
        "pyproj",
        "rasterio",
        "gym",
        "gymnasium",
        "stable_baselines3",
        "onnx",
        "onnxruntime",
        "skl2onnx",
        "tf2onnx",
        "fastai",
        "flask",
        "fastapi",
        "streamlit",
        "gradio",
        "dash",
        "ipywidgets",
        "jupyter",
        "notebook",
        "pyod",
        "mne",
        "astropy",
        "emcee",
        "corner",
        "arviz",
        "pymc",
        "gpflow",
        "pgmpy",
        "pomegranate",
        "openai",
        "langchain",
        "annoy",
        "hnswlib",
        "pytesseract",
        "easyocr",
        "selenium",
        "scrapy",
        "tweepy",
        "praw",
        "kaggle",
        "gdown",
        "wget",
        "tenacity",
        "loguru",
        "fairlearn",
        "interpret",
        "sweetviz",
        "ydata_profiling",
        "pandas_profiling",
        "xgboost_ray",
    ]
)


@functools.cache
def pipreqs_mapping() -> dict[str, str]:
    """pipreqs's ``import:distribution`` table."""
    try:
        text = (importlib.resources.files("pipreqs") / "mapping").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise RuntimeUnavailable(
            "the import -> distribution table of pipreqs is not installed: "
            "pip install --no-deps -r requirements-nodeps.txt (make setup does it)"
        ) from e
    table: dict[str, str] = {}
    for line in text.splitlines():
        module, sep, dist = line.strip().partition(":")
        if sep and module and dist:
            table.setdefault(module, dist)
    return table


@functools.cache
def python2_modules() -> frozenset[str]:
    """Standard-library names of both Pythons in pipreqs's list (``cPickle``, ``urllib2``): never installed."""
    try:
        text = (importlib.resources.files("pipreqs") / "stdlib").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return frozenset()
    return frozenset(line.strip().split(".")[0] for line in text.splitlines() if line.strip())


def distribution_for(module: str) -> str | None:
    """The distribution to install for ``import module`` (its top-level name), or None: not known."""
    top = module.split(".")[0]
    if top in RENAMED:
        return RENAMED[top]
    if top in pipreqs_mapping():
        return pipreqs_mapping()[top]
    return top if top in SAME_NAME else None


@functools.cache
def known_imports() -> tuple[str, ...]:
    return tuple(sorted({*RENAMED, *pipreqs_mapping(), *SAME_NAME}))


def likely(module: str, installed: frozenset[str] = frozenset()) -> str | None:
    """The import the code most likely meant (``kera`` -> ``keras``): a known or installed name close to it."""
    top = module.split(".")[0]
    lowered = {name.lower(): name for name in (*known_imports(), *installed) if name.isidentifier()}
    if top.lower() in lowered and lowered[top.lower()] != top:
        return lowered[top.lower()]  # Sklearn -> sklearn
    close = difflib.get_close_matches(top.lower(), list(lowered), n=1, cutoff=0.8)
    return lowered[close[0]] if close else None


def same_distribution(a: str, b: str) -> bool:
    return canonicalize_name(a) == canonicalize_name(b)
