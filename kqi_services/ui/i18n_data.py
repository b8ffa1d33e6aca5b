"""Messages of the data, dataset and preprocessing screens (English and Japanese)."""

EN = {
    "nav.data": "Data",
    "nav.datasets": "Datasets",
    "nav.preprocessing": "Preprocessing",
    "data.title": "Data",
    "datasets.title": "Datasets",
    "preprocessing.title": "Preprocessing",
}

JA = {
    "nav.data": "データ管理",
    "nav.datasets": "データセット管理",
    "nav.preprocessing": "前処理管理",
    "data.title": "データ管理",
    "datasets.title": "データセット管理",
    "preprocessing.title": "前処理管理",
}
