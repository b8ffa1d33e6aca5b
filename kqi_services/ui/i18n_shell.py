"""Messages of the web shell (a terminal into a running job, shell.js), English and Japanese.

The guide's 学習管理 chapter calls it シェル起動.
"""

EN = {
    "shell.open": "Shell",
    "shell.title": "Shell (root in the container)",
    "shell.close": "Close",
    "shell.connecting": "Connecting…",
    "shell.connected": "Connected",
    "shell.closed": "Closed",
    "shell.refused": "The shell closed (code {code}).",
    "shell.job_ended": "The job has ended.",
    "shell.no_xterm": "The terminal (xterm.js) could not be loaded: run `bash setup.sh`.",
    "shell.sessions": "Shell sessions",
    "shell.user": "User",
    "shell.opened_at": "Opened",
    "shell.closed_at": "Closed",
    "shell.close_reason": "How it ended",
    "shell.open_now": "open",
    "shell.no_sessions": "Nobody has opened a shell into this job.",
}

JA = {
    "shell.open": "シェル起動",
    "shell.title": "シェル (コンテナ内の root)",
    "shell.close": "閉じる",
    "shell.connecting": "接続中…",
    "shell.connected": "接続済み",
    "shell.closed": "切断しました",
    "shell.refused": "シェルが終了しました (コード {code})。",
    "shell.job_ended": "ジョブは終了しました。",
    "shell.no_xterm": "端末 (xterm.js) を読み込めませんでした。`bash setup.sh` を実行してください。",
    "shell.sessions": "シェルの接続履歴",
    "shell.user": "ユーザ",
    "shell.opened_at": "開始日時",
    "shell.closed_at": "終了日時",
    "shell.close_reason": "終了理由",
    "shell.open_now": "接続中",
    "shell.no_sessions": "このジョブにシェルで接続した人はいません。",
}
