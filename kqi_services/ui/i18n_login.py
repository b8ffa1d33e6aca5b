"""Labels of the hub's sign-in page (kqi_services/hubext/templates/login.html), English and
Japanese; the page takes the language the browser's Accept-Language prefers (see
kqi_services/hubext/login_page.py)."""
from __future__ import annotations

EN = {
    "login.title": "Sign in - KQI Hub",
    "login.heading": "Sign in to KQI Hub",
    "login.username": "User name:",
    "login.password": "Password:",
    "login.show_password": "Show password",
    "login.hide_password": "Hide password",
    "login.submit": "Sign in",
    "login.insecure": "Warning: this hub is served over an unsecured HTTP connection. We strongly recommend HTTPS.",
    "login.signup": 'No account yet? <a href="signup">Sign up</a>.',
    "login.error.invalid": "Invalid user name or password.",
    "login.error.xsrf": "The sign-in form was invalid or had expired. Please try again.",
}

JA = {
    "login.title": "サインイン - KQI Hub",
    "login.heading": "KQI Hub にサインイン",
    "login.username": "ユーザ名:",
    "login.password": "パスワード:",
    "login.show_password": "パスワードを表示",
    "login.hide_password": "パスワードを隠す",
    "login.submit": "サインイン",
    "login.insecure": "警告: このハブは暗号化されていない HTTP 接続で提供されています。HTTPS の利用を強く推奨します。",
    "login.signup": 'アカウントをお持ちでない場合は <a href="signup">サインアップ</a> してください。',
    "login.error.invalid": "ユーザ名またはパスワードが正しくありません。",
    "login.error.xsrf": "サインインフォームが無効か期限切れです。もう一度お試しください。",
}

CATALOGS = {"en": EN, "ja": JA}

#: the hub's own sign-in messages (jupyterhub.handlers.login) and their keys above
HUB_MESSAGES = {
    "Invalid username or password": "login.error.invalid",
    "Login form invalid or expired. Try again.": "login.error.xsrf",
}
