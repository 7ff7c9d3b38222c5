"""Models, the public facade (``from emolib import models as M``): each name here is defined in one
of the modules below and only re-exported.

* :mod:`emolib.layers` — emolib's Keras layers: in-graph preprocessing, logit adjustment and
  temperature scaling, the valence-arousal loss, augmentation;
* :mod:`emolib.backbones` — the backbone registry and :func:`build_model`, the layers of a built
  model and weights moved between models;
* :mod:`emolib.modelfiles` — ``model.keras`` and its card, saved and loaded;
* :mod:`emolib.modelcards` — the Keras-free facts about model files (which models exist, their cards).
"""

from __future__ import annotations

from emolib.backbones import (  # noqa: F401 - re-exported
    BACKBONES,
    Backbone,
    build_model,
    compact_vgg,
    get_backbone,
    has_valence_arousal,
    leaf_layers,
    list_backbones,
    register_backbone,
    resnet50,
    simple_cnn,
    transfer_weights,
    vgg16,
)
from emolib.layers import (  # noqa: F401 - re-exported
    PREPROCESSING_MODES,
    Augment,
    Augmentation,
    FacePreprocess,
    LogitAdjustment,
    RandomAffine,
    as_augmentation,
    augment_layer,
    masked_squared_error,
    with_logit_adjustment,
    with_temperature,
)
from emolib.modelcards import (  # noqa: F401 - re-exported
    CARD_FILE,
    DEFAULT_MODEL_DIR,
    MODEL_FILE,
    SHIPPED_MODELS_DIR,
    VALENCE_AROUSAL,
    LoadedModel,
    find_card,
    list_models,
)
from emolib.modelfiles import inference_copy, load_model, make_card, save_model  # noqa: F401 - re-exported
