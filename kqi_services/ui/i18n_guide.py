"""Messages of the home page's first steps and the links to the user guide (docs/), English and
Japanese. The Japanese terms follow the KAMONOHASHI user guide (データ管理, データセット管理, 学習管理,
ノートブック管理)."""

EN = {
    "menu.guide": "User guide",
    "home.intro": "This is KQI, the AI development platform. Everything you make here belongs to your"
                  " current tenant, shown in the header and below; switch tenants there.",
    "home.first_steps": "First steps",
    "home.step_data": "Upload data",
    "home.step_data_desc": "Files to learn from (images, CSV, …), kept in this tenant.",
    "home.step_dataset": "Make a dataset",
    "home.step_dataset_desc": "Choose data for training, testing and validation.",
    "home.step_training": "Run a training",
    "home.step_training_desc": "Your model's code from git, in a container image, on a dataset.",
    "home.step_notebook": "Start a notebook",
    "home.step_notebook_desc": "JupyterLab with the same /kqi folders as a job.",
    "home.in_guide": "How, in the guide",
    "home.guide": "User guide",
    "home.guide_desc": "Concepts, the job flow and what a job sees, the kqi CLI and SDK, notebooks,"
                       " TensorBoard, administration.",
    "home.no_tenant_help": "You belong to no tenant yet, so there is nothing to work in: ask an administrator"
                           " to add you to one.",
}

JA = {
    "menu.guide": "ユーザガイド",
    "home.intro": "AI 開発基盤 KQI です。ここで作るものはすべて現在のテナント (ヘッダと下に表示) に属します。"
                  "テナントはヘッダで切り替えられます。",
    "home.first_steps": "はじめの手順",
    "home.step_data": "データをアップロードする",
    "home.step_data_desc": "学習に使うファイル (画像、CSV など) をこのテナントに登録します。",
    "home.step_dataset": "データセットを作る",
    "home.step_dataset_desc": "データを学習・テスト・検証用に振り分けます。",
    "home.step_training": "学習を実行する",
    "home.step_training_desc": "Git のモデルのコードを、コンテナイメージの中でデータセットに対して実行します。",
    "home.step_notebook": "ノートブックを起動する",
    "home.step_notebook_desc": "ジョブと同じ /kqi フォルダを持つ JupyterLab です。",
    "home.in_guide": "ガイドで手順を見る",
    "home.guide": "ユーザガイド",
    "home.guide_desc": "概念、ジョブの流れとジョブから見えるもの、kqi CLI と SDK、ノートブック、TensorBoard、管理者の設定。",
    "home.no_tenant_help": "まだどのテナントにも属していないため、作業できる場所がありません。管理者にテナントへの追加を依頼してください。",
}
