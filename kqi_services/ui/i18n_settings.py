"""Messages of the job environment screens: the system administrator's ジョブ環境設定 and the
tenant administrator's テナント設定 (English and Japanese)."""

EN = {
    "nav.jobenv": "Job environment",
    "nav.tenant_settings": "Tenant settings",
    "home.jobenv_desc": "Environment variables and network mode of every job and notebook container.",
    "home.tenant_settings_desc": "The job environment of the current tenant.",
    "tenant_settings.title": "Tenant settings",
    "tenant_settings.of": "Settings of {tenant}",
    "jobenv.title": "Job environment",
    "jobenv.help": "Every training, inference, preprocessing and notebook container gets these environment"
                   " variables and this network mode: for example the company's package index or proxy"
                   " (PIP_INDEX_URL, PIP_CERT, HTTPS_PROXY), so that pip install works in jobs."
                   " A tenant may override them.",
    "jobenv.system": "System setting",
    "jobenv.tenant_override": "Tenant override",
    "jobenv.tenant_help": "A tenant's variables are merged over the system's (the same name: the tenant's value);"
                          " its network mode, when chosen, replaces the system's.",
    "jobenv.tenant_admin_help": "The jobs and notebooks of this tenant get the system's variables and network mode"
                                " with what is set here merged over them (the same name: this tenant's value).",
    "jobenv.tenant": "Tenant",
    "jobenv.choose_tenant": "Choose a tenant",
    "jobenv.network": "Network mode",
    "jobenv.network_help": "host: the machine's own network; bridge: a network of the container's own with"
                           " access to the outside; none: no network.",
    "jobenv.network_host": "host (the machine's network)",
    "jobenv.network_bridge": "bridge (own network)",
    "jobenv.network_none": "none (no network)",
    "jobenv.network_inherit": "The system's setting",
    "jobenv.variables": "Environment variables",
    "jobenv.var_name": "Name",
    "jobenv.var_value": "Value",
    "jobenv.add": "Add a variable",
    "jobenv.remove": "Remove",
    "jobenv.no_variables": "No variables.",
    "jobenv.names_help": "Names are letters, digits and _, and do not start with a digit. The platform's own"
                         " variables (KQI_TOKEN, KQI_SERVER, TRAINING_ID, ...) cannot be set.",
    "jobenv.effective": "What the jobs of this tenant get",
    "jobenv.no_name": "A variable has a value but no name.",
    "jobenv.duplicate": "The variable {name} is given twice.",
    "jobenv.values_note": "The values are passed to the containers as they are, so the members can read them"
                          " inside their jobs; they are never written to the logs.",
}

JA = {
    "nav.jobenv": "ジョブ環境設定",
    "nav.tenant_settings": "テナント設定",
    "home.jobenv_desc": "すべてのジョブ・ノートブックのコンテナに設定する環境変数とネットワークモード。",
    "home.tenant_settings_desc": "現在のテナントのジョブ環境。",
    "tenant_settings.title": "テナント設定",
    "tenant_settings.of": "{tenant} の設定",
    "jobenv.title": "ジョブ環境設定",
    "jobenv.help": "学習・推論・前処理・ノートブックのすべてのコンテナに、ここで設定した環境変数とネットワークモードが"
                   "設定されます。例えば社内のパッケージインデックスやプロキシ(PIP_INDEX_URL、PIP_CERT、HTTPS_PROXY)を"
                   "設定すると、ジョブの中で pip install が使えます。テナントごとに上書きできます。",
    "jobenv.system": "システム設定",
    "jobenv.tenant_override": "テナントごとの上書き",
    "jobenv.tenant_help": "テナントの環境変数はシステムの環境変数に追加されます(同じ名前はテナントの値が優先)。"
                          "ネットワークモードを選ぶと、システムの設定に代わって使われます。",
    "jobenv.tenant_admin_help": "このテナントのジョブとノートブックには、システムの環境変数とネットワークモードに"
                                "ここでの設定を重ねたものが設定されます(同じ名前はこのテナントの値が優先)。",
    "jobenv.tenant": "テナント",
    "jobenv.choose_tenant": "テナントを選択",
    "jobenv.network": "ネットワークモード",
    "jobenv.network_help": "host: マシン自身のネットワーク、bridge: 外部に接続できるコンテナ専用のネットワーク、"
                           "none: ネットワークなし。",
    "jobenv.network_host": "host(マシンのネットワーク)",
    "jobenv.network_bridge": "bridge(専用のネットワーク)",
    "jobenv.network_none": "none(ネットワークなし)",
    "jobenv.network_inherit": "システム設定に従う",
    "jobenv.variables": "環境変数",
    "jobenv.var_name": "変数名",
    "jobenv.var_value": "値",
    "jobenv.add": "環境変数を追加",
    "jobenv.remove": "削除",
    "jobenv.no_variables": "環境変数はありません。",
    "jobenv.names_help": "変数名は英数字と _ で、数字で始めることはできません。プラットフォームが設定する環境変数"
                         "(KQI_TOKEN、KQI_SERVER、TRAINING_ID など)は設定できません。",
    "jobenv.effective": "このテナントのジョブに設定される内容",
    "jobenv.no_name": "変数名のない値があります。",
    "jobenv.duplicate": "環境変数 {name} が重複しています。",
    "jobenv.values_note": "値はそのままコンテナに渡されるため、メンバーはジョブの中で読むことができます。"
                          "ログには書き込まれません。",
}
