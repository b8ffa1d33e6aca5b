"""A password change ends what the old password opened, through the real hub: every API token
and OAuth access token of the user stops working (401), and every browser's hub sign-in ends.

Which browser keeps a sign-in: a change through the kqi API (PUT /account/password) or an
administrator's reset ends all of them, the current one included (sign in again); a change on
the hub's own page (/hub/change-password) gives that browser a new sign-in cookie, and its KQI UI
gets a new OAuth token from it without a password, while every other browser must sign in again.
"""
from __future__ import annotations

import re
import uuid

import requests

from .platform import user_hub_token


def sign_in(platform, name: str, password: str) -> requests.Session:
    """A browser: signed in at the hub, then at the KQI UI (the service's OAuth with the hub)."""
    session = requests.Session()
    page = session.get(f"{platform.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    data = {"username": name, "password": password, **({"_xsrf": xsrf.group(1)} if xsrf else {})}
    r = session.post(f"{platform.url}/hub/login", data=data, timeout=60)
    assert r.status_code == 200, (r.status_code, r.url)
    r = session.get(f"{platform.service_url}/", timeout=30)  # the OAuth dance, if the doors did not do it
    assert r.status_code == 200 and r.url.startswith(platform.service_url), r.url
    return session


def kqi_as(platform, session_or_token) -> int:
    """The status of GET /account (the kqi API) with a token or a browser's cookies."""
    if isinstance(session_or_token, requests.Session):
        return session_or_token.get(f"{platform.api_url}/account", allow_redirects=False, timeout=30).status_code
    return platform.api("GET", "/account", session_or_token).status_code


def hub_as(platform, token: str) -> int:
    return requests.get(f"{platform.hub_api_url}/user", headers={"Authorization": f"token {token}"},
                        timeout=30).status_code


def hub_signed_in(platform, session: requests.Session) -> bool:
    r = session.get(f"{platform.hub_api_url}/user", allow_redirects=False, timeout=30,
                    headers={"Referer": f"{platform.url}/hub/"})
    return r.status_code == 200


class Holder:
    """A user holding every kind of credential: two kqi (hub API) tokens, a hub token made with the
    password, and two signed-in browsers (hub cookie + the KQI UI's OAuth access token)."""

    def __init__(self, platform):
        self.platform = platform
        self.name, self.password = platform.create_user(tenants=["sandbox"])
        self.kqi_tokens = [platform.login(self.name, self.password) for _ in range(2)]
        self.hub_token = user_hub_token(platform, self.name, self.password)
        self.browsers = [sign_in(platform, self.name, self.password) for _ in range(2)]

    def assert_all_work(self):
        p = self.platform
        assert [kqi_as(p, t) for t in self.kqi_tokens] == [200, 200]
        assert hub_as(p, self.hub_token) == 200
        assert [kqi_as(p, b) for b in self.browsers] == [200, 200]
        assert all(hub_signed_in(p, b) for b in self.browsers)

    def assert_tokens_revoked(self):
        p = self.platform
        assert [kqi_as(p, t) for t in self.kqi_tokens] == [401, 401]
        assert hub_as(p, self.hub_token) in (401, 403)
        assert [kqi_as(p, b) for b in self.browsers] == [401, 401]  # their OAuth access tokens

    def oauth_tokens(self) -> list[dict]:
        tokens = self.platform.hub("GET", f"/users/{self.name}/tokens").json()["api_tokens"]
        return [t for t in tokens if t.get("oauth_client")]


def new_password() -> str:
    return "new-" + uuid.uuid4().hex


def test_change_through_the_kqi_api_revokes_everything(platform):
    u = Holder(platform)
    u.assert_all_work()
    assert u.oauth_tokens()  # the browsers' KQI UI sign-ins are OAuth access tokens of the hub
    new = new_password()
    r = platform.api("PUT", "/account/password", u.kqi_tokens[0],
                     json={"currentPassword": u.password, "newPassword": new})
    assert r.status_code == 204, r.text
    u.assert_tokens_revoked()
    assert u.oauth_tokens() == []
    assert not any(hub_signed_in(platform, b) for b in u.browsers)  # every browser signs in again
    # the new password works, the old one does not
    assert kqi_as(platform, platform.login(u.name, new)) == 200
    old = requests.post(f"{platform.api_url}/account/login", json={"userName": u.name, "password": u.password},
                        timeout=30)
    assert old.status_code == 401
    assert kqi_as(platform, sign_in(platform, u.name, new)) == 200


def test_administrators_reset_revokes_everything(platform):
    u = Holder(platform)
    u.assert_all_work()
    r = platform.api("PUT", f"/admin/users/{u.name}/password", platform.admin_token(),
                     json={"password": new_password()})
    assert r.status_code == 204, r.text
    u.assert_tokens_revoked()
    assert not any(hub_signed_in(platform, b) for b in u.browsers)
    # another user's tokens are untouched
    other = Holder(platform)
    other.assert_all_work()


def test_change_on_the_hub_page_keeps_this_browser_only(platform):
    u = Holder(platform)
    u.assert_all_work()
    here, elsewhere = u.browsers
    page = here.get(f"{platform.url}/hub/change-password", timeout=30)
    assert page.status_code == 200, page.status_code
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    new = new_password()
    r = here.post(f"{platform.url}/hub/change-password", timeout=30,
                  data={"current_password": u.password, "new_password": new, "new_password_confirmation": new,
                        **({"_xsrf": xsrf.group(1)} if xsrf else {})})
    assert r.status_code == 200 and "revoked" in r.text, (r.status_code, r.text[:500])
    u.assert_tokens_revoked()
    assert hub_signed_in(platform, here) and not hub_signed_in(platform, elsewhere)
    # this browser's KQI UI signs in again through the hub without a password: a new OAuth token
    r = here.get(f"{platform.service_url}/", timeout=30)
    assert r.status_code == 200 and r.url.startswith(platform.service_url), r.url
    assert kqi_as(platform, here) == 200
    assert kqi_as(platform, elsewhere) == 401
