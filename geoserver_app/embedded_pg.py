"""CDT's own PostGIS cluster: a private data folder inside the project.

Nothing else in CDT knows the database is embedded: this module only turns the
folder into a `CDT_DATABASE_URL`. initdb refuses to run as root, so when started
as root the cluster belongs to an unprivileged system user (`postgres` by default,
created by Debian's PostgreSQL package).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from geoserver_app.config import Config
from layers.errors import CDTError

DEBIAN_PACKAGES = ("postgresql-15-postgis-3", "postgresql-15-pgrouting")
DB_NAME = "cdt"
DB_USER = "cdt"


class EmbeddedDatabaseError(CDTError):
    def __init__(self, detail: str):
        super().__init__(detail, 503, "ServiceUnavailable")


def find_pg_bin(config: Config) -> Path:
    """The PostgreSQL bin folder, preferring the newest Debian version."""
    candidates = [config.pg_bin_dir] if config.pg_bin_dir else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).resolve().parent))
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    raise EmbeddedDatabaseError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install the Debian packages "
        f"{' '.join(DEBIAN_PACKAGES)} (as root: apt-get install -y {' '.join(DEBIAN_PACKAGES)}), "
        "or point CDT_DATABASE_URL at an existing PostGIS database."
    )


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def check_extensions(bin_dir: Path) -> None:
    """PostGIS and pgRouting must be installed for the server version we run."""
    share = subprocess.run([str(bin_dir / "pg_config"), "--sharedir"], capture_output=True, text=True)
    sharedir = Path(share.stdout.strip()) if share.returncode == 0 else bin_dir.parent.parent.parent / "share"
    missing = [
        name for name in ("postgis", "pgrouting") if not (sharedir / "extension" / f"{name}.control").exists()
    ]
    if missing:
        raise EmbeddedDatabaseError(
            f"PostgreSQL extension(s) {', '.join(missing)} are not installed for {bin_dir}. "
            f"Install the Debian packages {' '.join(DEBIAN_PACKAGES)}."
        )


@dataclass
class EmbeddedCluster:
    config: Config

    # --- where things live -------------------------------------------------
    @property
    def root(self) -> Path:
        """The data folder: inside the project, unless we are root and the cluster's system
        user cannot reach it (a clone under /root): then a folder of its own in /var/lib/cdt."""
        owner = self._owner()
        if owner is None or _reachable(self.config.data_dir, owner):
            return self.config.data_dir
        digest = hashlib.sha1(str(self.config.data_dir.resolve()).encode()).hexdigest()[:12]
        return Path("/var/lib/cdt") / digest

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.root / "db-password"

    @property
    def port(self) -> int:
        return self.config.pg_port

    def url(self, dbname: str = DB_NAME) -> str:
        password = self.password_file.read_text().strip()
        return f"postgresql+psycopg://{DB_USER}:{password}@127.0.0.1:{self.port}/{dbname}"

    # --- running as the right user -----------------------------------------
    def _owner(self) -> pwd.struct_passwd | None:
        """The system user that owns the cluster when we are root, else None."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.config.pg_system_user)
        except KeyError as exc:
            raise EmbeddedDatabaseError(
                f"Running as root, the embedded cluster needs the unprivileged system user "
                f"'{self.config.pg_system_user}' (created by Debian's postgresql package); "
                "set CDT_PG_SYSTEM_USER to another one."
            ) from exc

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        owner = self._owner()
        kwargs: dict = {"capture_output": True, "text": True}
        if owner is not None:
            kwargs.update(user=owner.pw_uid, group=owner.pw_gid, extra_groups=[], cwd="/")
        result = subprocess.run(args, **kwargs)
        if check and result.returncode != 0:
            raise EmbeddedDatabaseError(
                f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
                f"\nSee {self.log_file} for the server log."
            )
        return result

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.root != self.config.data_dir:
            print(f"note: {self.config.data_dir} is not reachable by the cluster's system user; "
                  f"the embedded cluster lives in {self.root}")
        owner = self._owner()
        if owner is None:
            return
        for path in (self.root, self.socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        probe = subprocess.run(
            ["test", "-w", str(self.root)], user=owner.pw_uid, group=owner.pw_gid, extra_groups=[]
        )
        if probe.returncode != 0:
            raise EmbeddedDatabaseError(
                f"The system user '{owner.pw_name}' cannot reach {self.root} (a parent folder such as "
                "/root is private). Set CDT_DATA_DIR to a folder it can reach, e.g. /var/lib/cdt."
            )

    # --- lifecycle ------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        bin_dir = find_pg_bin(self.config)
        check_extensions(bin_dir)
        self._prepare_root()
        if self.initialized():
            return
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
            self.password_file.chmod(0o600)
        owner = self._owner()
        # initdb reads the password as the cluster owner, so hand it a copy it may read.
        pwfile = self.root / ".initdb-pw"
        pwfile.write_text(self.password_file.read_text())
        pwfile.chmod(0o600)
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            self._run([
                str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", DB_USER, "--pwfile", str(pwfile),
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
            ])
        finally:
            pwfile.unlink(missing_ok=True)

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run([str(find_pg_bin(self.config) / "pg_ctl"), "status", "-D", str(self.pgdata)],
                         check=False).returncode == 0

    def start(self) -> str:
        self.init()
        if not self.running():
            if _port_in_use(self.port):
                raise EmbeddedDatabaseError(
                    f"Port {self.port} on 127.0.0.1 is taken by another server; set CDT_PG_PORT to a free port."
                )
            options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                       "-c max_connections=100 -c shared_buffers=256MB")
            self._run([
                str(find_pg_bin(self.config) / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.pgdata),
                "-l", str(self.log_file), "-o", options,
            ])
        self.ensure_database(DB_NAME)
        return self.url()

    def stop(self) -> bool:
        if not self.running():
            return False
        self._run([str(find_pg_bin(self.config) / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)])
        return True

    def ensure_database(self, dbname: str) -> None:
        ensure_database(self.url("postgres"), dbname)


def ensure_database(server_url: str, dbname: str) -> bool:
    """Create `dbname` on the server of `server_url` unless it exists; True if created."""
    import psycopg

    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return False
        conn.execute(f'CREATE DATABASE "{dbname}"')
        return True


def drop_database(server_url: str, dbname: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _reachable(path: Path, owner: pwd.struct_passwd) -> bool:
    """Can `owner` reach `path` (or, if it does not exist yet, the folder it will be made in)?"""
    probe = path
    while not probe.exists():
        probe = probe.parent
    result = subprocess.run(["test", "-x", str(probe)], user=owner.pw_uid, group=owner.pw_gid, extra_groups=[],
                            cwd="/")
    return result.returncode == 0


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0



def database_url(config: Config, start: bool = False) -> str:
    """The URL CDT talks to: `CDT_DATABASE_URL`, or the embedded cluster's."""
    if not config.embedded:
        url = config.database_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    cluster = EmbeddedCluster(config)
    if start:
        return cluster.start()
    if not cluster.password_file.exists():
        raise EmbeddedDatabaseError("The embedded database was never started: run `cdt db start`.")
    return cluster.url()
