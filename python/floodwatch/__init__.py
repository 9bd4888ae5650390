"""floodwatch: DDoS flood detection with autoencoders trained on normal traffic.

Every result comes from the Rust library (the compiled ``floodwatch._native``
module); this file only re-exports it.
"""

from floodwatch._native import (  # noqa: F401
    AutoEncoder,
    Error,
    Extraction,
    IForest,
    KitNET,
    LOF,
    OCSVM,
    Stream,
    __version__,
    extract,
    feature_names,
    iter_extract,
    load,
    roc_auc,
    tsne,
)
