"""A real OpenLDAP server (Debian's slapd) for the tests, with a configuration of its own.

`LdapServer(base_dir).start()` writes a cn=config LDIF (the core, cosine, nis and inetorgperson
schemas, one mdb database for dc=example,dc=org), loads it with `slapadd -n0` into a directory of
its own, and runs slapd on a free loopback port as the current user. Entries are made and changed
with the OpenLDAP client tools (ldapadd, ldapmodify), as an administrator would.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from kqi_services.datadir import free_port

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"


def available() -> bool:
    return all(shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")
               for tool in ("slapd", "slapadd", "ldapadd", "ldapmodify"))


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class LdapServer:
    def __init__(self, base_dir: str, root_password: str = "ldap-root-secret"):
        self.base_dir = base_dir
        self.root_password = root_password
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def _config_ldif(self, db_dir: str) -> str:
        schemas = "".join(f"include: file://{SCHEMA_DIR}/{name}.ldif\n\n"
                          for name in ("core", "cosine", "nis", "inetorgperson"))
        return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.base_dir}/slapd.pid

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcDbDirectory: {db_dir}
olcRootDN: {ROOT_DN}
olcRootPW: {self.root_password}
olcDbMaxSize: 104857600
olcAccess: {{0}}to attrs=userPassword by self read by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none
"""

    def start(self, timeout: float = 20) -> "LdapServer":
        conf_dir = os.path.join(self.base_dir, "slapd.d")
        db_dir = os.path.join(self.base_dir, "db")
        os.makedirs(conf_dir, exist_ok=True)
        os.makedirs(db_dir, exist_ok=True)
        ldif = os.path.join(self.base_dir, "config.ldif")
        with open(ldif, "w") as f:
            f.write(self._config_ldif(db_dir))
        subprocess.run([_tool("slapadd"), "-n0", "-F", conf_dir, "-l", ldif],
                       check=True, capture_output=True, text=True)
        self.log = open(os.path.join(self.base_dir, "slapd.log"), "ab")
        # -d 0: stay in the foreground (so the test owns the process), no debug output
        self.process = subprocess.Popen(
            [_tool("slapd"), "-d", "0", "-h", f"{self.url}/", "-F", conf_dir],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}")
            done = subprocess.run(["ldapsearch", "-x", "-H", self.url, "-D", ROOT_DN, "-y", self._password_file(),
                                   "-b", "", "-s", "base"], capture_output=True)
            if done.returncode == 0:
                self.add(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n"
                         f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
                         f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n")
                return self
            time.sleep(0.2)
        raise RuntimeError("slapd did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    # ----------------------------------------------------------------- entries
    def _run(self, tool: str, ldif: str) -> None:
        done = subprocess.run([tool, "-x", "-H", self.url, "-D", ROOT_DN, "-y", self._password_file()],
                              input=ldif, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}")

    def _password_file(self) -> str:
        # the password in a file (-y), not on the command line
        path = os.path.join(self.base_dir, "root-password")
        if not os.path.exists(path):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(self.root_password)
        return path

    def add(self, ldif: str) -> None:
        self._run("ldapadd", ldif)

    def modify(self, ldif: str) -> None:
        self._run("ldapmodify", ldif)

    def add_user(self, uid: str, password: str, display_name: str | None = None) -> str:
        dn = f"uid={uid},{PEOPLE}"
        self.add(f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {display_name or uid}\n"
                 f"sn: {uid}\ndisplayName: {display_name or uid}\nuserPassword: {password}\n")
        return dn

    def add_group(self, cn: str, members: list[str]) -> str:
        dn = f"cn={cn},{GROUPS}"
        lines = "".join(f"member: uid={m},{PEOPLE}\n" for m in members)
        self.add(f"dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}")
        return dn

    def delete_user(self, uid: str) -> None:
        done = subprocess.run(["ldapdelete", "-x", "-H", self.url, "-D", ROOT_DN, "-y", self._password_file(),
                               f"uid={uid},{PEOPLE}"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ldapdelete failed ({done.returncode}): {done.stderr}")

    def add_member(self, group: str, uid: str) -> None:
        self.modify(f"dn: cn={group},{GROUPS}\nchangetype: modify\nadd: member\nmember: uid={uid},{PEOPLE}\n")

    def remove_member(self, group: str, uid: str) -> None:
        self.modify(f"dn: cn={group},{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid={uid},{PEOPLE}\n")
