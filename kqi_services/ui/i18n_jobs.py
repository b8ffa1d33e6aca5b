"""Messages of the training, inference and notebook screens (English and Japanese)."""

EN = {
    "nav.training": "Training",
    "nav.inference": "Inference",
    "nav.notebooks": "Notebooks",
    "training.title": "Training",
    "inference.title": "Inference",
    "notebooks.title": "Notebooks",
}

JA = {
    "nav.training": "学習管理",
    "nav.inference": "推論管理",
    "nav.notebooks": "ノートブック管理",
    "training.title": "学習管理",
    "inference.title": "推論管理",
    "notebooks.title": "ノートブック管理",
}
