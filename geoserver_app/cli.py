"""The `cdt` command line: database, loads and the server."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from geoserver_app.config import Config
from layers.errors import CDTError


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _engine(config: Config):
    from geoserver_app.embedded_pg import database_url
    from layers.db import engine_for

    return engine_for(database_url(config))


class CDTGroup(click.Group):
    """Turn CDT's own errors into one clear message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CDTError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            for problem in exc.context.get("problems", [])[:30]:
                click.echo(f"  {problem.get('row')}: {problem.get('reason')}", err=True)
            extra = len(exc.context.get("problems", [])) - 30
            if extra > 0:
                click.echo(f"  ... and {extra} more", err=True)
            sys.exit(2)


@click.group(cls=CDTGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """CDT: City Digital Twin."""
    ctx.obj = Config.from_env()


# --- database ------------------------------------------------------------------------------
@main.group(cls=CDTGroup)
def db() -> None:
    """The PostGIS database (embedded unless CDT_DATABASE_URL is set)."""


@db.command()
@click.pass_obj
def start(config: Config) -> None:
    """Start CDT's own PostGIS cluster (no-op with CDT_DATABASE_URL)."""
    from geoserver_app.embedded_pg import EmbeddedCluster, database_url

    if not config.embedded:
        database_url(config)
        click.echo("CDT_DATABASE_URL is set: using that database, no embedded cluster started.")
        return
    cluster = EmbeddedCluster(config)
    cluster.start()
    click.echo(f"embedded PostGIS running on 127.0.0.1:{cluster.port}, data in {cluster.pgdata}")


@db.command()
@click.pass_obj
def stop(config: Config) -> None:
    """Stop the embedded cluster."""
    from geoserver_app.embedded_pg import EmbeddedCluster

    stopped = EmbeddedCluster(config).stop() if config.embedded else False
    click.echo("stopped" if stopped else "not running")


@db.command()
@click.pass_obj
def status(config: Config) -> None:
    """Say where the database is and whether its schema is current."""
    from sqlalchemy import text

    from geoserver_app.embedded_pg import EmbeddedCluster
    from layers.db import current_revision, head_revision

    if config.embedded:
        cluster = EmbeddedCluster(config)
        running = cluster.running()
        click.echo(f"embedded cluster {cluster.pgdata}: {'running' if running else 'stopped'} "
                   f"(port {cluster.port})")
        if not running:
            sys.exit(1)
    with _engine(config).connect() as conn:
        version = conn.execute(text("SELECT postgis_lib_version()")).scalar()
        current = current_revision(conn)
    head = head_revision()
    click.echo(f"PostGIS {version}; schema {current or 'empty'} (head {head})"
               + ("" if current == head else " - run `cdt db migrate`"))


@db.command()
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def migrate(config: Config, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from geoserver_app.embedded_pg import database_url
    from layers.db import migrate as run

    run(database_url(config), revision)
    click.echo(f"schema at {revision}")


@db.command()
@click.argument("revision")
@click.pass_obj
def downgrade(config: Config, revision: str) -> None:
    """Roll migrations back to REVISION ('base' empties the schema)."""
    from geoserver_app.embedded_pg import database_url
    from layers.db import downgrade as run

    run(database_url(config), revision)
    click.echo(f"schema at {revision}")


@db.command()
@click.pass_obj
def url(config: Config) -> None:
    """Print the database URL (for psql, QGIS, ...)."""
    from geoserver_app.embedded_pg import database_url

    click.echo(database_url(config).replace("postgresql+psycopg://", "postgresql://"))


# --- loading ---------------------------------------------------------------------------------
@main.group(cls=CDTGroup)
def load() -> None:
    """Load data; each load is one transaction (all or nothing)."""


def _echo_reports(reports) -> None:
    for report in reports if isinstance(reports, list) else [reports]:
        click.echo(report.summary())


@load.command("file")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--layer", "layer_name", required=True, help="Target layer, e.g. buildings, facilities.")
@click.option("--map", "mappings", multiple=True, metavar="FIELD=COLUMN", help="Layer field from a file column.")
@click.option("--set", "constants", multiple=True, metavar="FIELD=VALUE", help="Layer field set for every row.")
@click.option("--key", help="File column holding each feature's id (default: feature order).")
@click.option("--crs", help="CRS of a file that declares none (CSV, some Shapefiles).")
@click.option("--source", help="Dataset name for the natural key (default: file name).")
@click.option("--repair", is_flag=True, help="Repair invalid geometries instead of refusing the load.")
@click.option("--territory", help="OKTMO of the territory for features outside every boundary.")
@click.option("--file-layer", help="Layer inside a GeoPackage.")
@click.pass_obj
def load_file_cmd(config: Config, path: Path, layer_name: str, mappings, constants, key, crs, source, repair,
                  territory, file_layer) -> None:
    """Load a GeoPackage, GeoJSON, Shapefile, GeoParquet or CSV file into a layer."""
    from layers.ingest.prepare import parse_assignments
    from layers.ingest.service import load_file

    _echo_reports(load_file(
        _engine(config), path, layer_name, actor=_actor(), mapping=parse_assignments(mappings, "--map"),
        constants=parse_assignments(constants, "--set"), key=key, crs=crs, source=source, repair=repair,
        territory=territory, file_layer=file_layer, progress=True))


@load.command("kpt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--territory", help="OKTMO of the territory the parcels belong to.")
@click.pass_obj
def load_kpt_cmd(config: Config, paths, territory) -> None:
    """Load Rosreestr cadastral plans of territory (KPT XML, schema 10) into parcels."""
    from layers.ingest.service import load_kpt

    _echo_reports(load_kpt(_engine(config), list(paths), actor=_actor(), territory=territory, progress=True))


@load.command("osm")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--territory", help="OKTMO of the territory for features outside every boundary.")
@click.option("--layers", default="streets,buildings,facilities", show_default=True)
@click.pass_obj
def load_osm_cmd(config: Config, path: Path, territory, layers: str) -> None:
    """Load an OpenStreetMap PBF: street network, buildings, amenities."""
    from layers.ingest.service import load_osm

    _echo_reports(load_osm(_engine(config), path, actor=_actor(), territory=territory,
                           layers=tuple(x.strip() for x in layers.split(",") if x.strip()), progress=True))


@load.command("raster")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--into", type=click.Choice(["buildings", "territories"]), required=True)
@click.option("--weight", help="Building field that splits a cell among buildings (e.g. living_area_m2).")
@click.option("--crs", help="CRS of a raster that declares none.")
@click.option("--territory", help="Only this territory (OKTMO prefix).")
@click.pass_obj
def load_raster_cmd(config: Config, path: Path, into: str, weight, crs, territory) -> None:
    """Sum a GeoTIFF population raster into building residents or territory populations."""
    from layers.ingest.service import load_raster

    _echo_reports(load_raster(_engine(config), path, into, actor=_actor(), weight=weight, crs=crs,
                              territory=territory))


@load.command("territories")
@click.argument("selectors", nargs=-1, required=True)
@click.option("--cities", type=click.Path(path_type=Path), help="cities.csv (default: the repository's copy).")
@click.option("--boundary", "boundaries", multiple=True, metavar="OKTMO=FILE")
@click.pass_obj
def load_territories_cmd(config: Config, selectors, cities, boundaries) -> None:
    """Load territories (and their parents) of cities named by OKTMO code or name."""
    from layers.ingest.prepare import parse_assignments
    from layers.ingest.territories import load_territories

    _echo_reports(load_territories(_engine(config), cities or config.demo_data / "russia" / "cities.csv",
                                   list(selectors), actor=_actor(),
                                   boundaries=parse_assignments(boundaries, "--boundary")))


@load.command("demo")
@click.pass_obj
def load_demo_cmd(config: Config) -> None:
    """Load the demo city of Vologda and the Ekaterinburg and Novocheboksarsk parcels."""
    from layers.ingest.demo import load_demo

    load_demo(_engine(config), config.demo_data, _actor(), progress=True, echo=click.echo)
    _load_demo_balances(config)
    # The demo city's result layers (walking access, provision by norms), unless they are current.
    _analyse(config, DEMO_TERRITORY, force=False)
    _compute_indicators(config, "19000000", None)


def _compute_indicators(config: Config, territory: str | None, year: int | None) -> None:
    from tqdm import tqdm

    from planning.indicators import service

    engine = _engine(config)
    service.install(engine, _actor())
    with tqdm(total=100, desc="indicators", unit="%", bar_format="{l_bar}{bar}| {postfix}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = round(100 * fraction)
            bar.set_postfix_str(message)
            bar.refresh()

        out = service.run(engine, territory, year, _actor(), progress=progress)
    click.echo(f"indicators of {territory or 'every territory'} for {out['year']}: {out['indicators']:,} indicators "
               f"x {out['territories']} territories, {out['values']:,} values stored in {out['total_s']:.1f} s")


DEMO_TERRITORY = "19701000"
# The real fuel and energy balances of Moscow Oblast (data/feb/moscow-oblast, see data/README.md).
DEMO_BALANCES = ("feb/moscow-oblast", "46000000", "Московская область")


def _load_demo_balances(config: Config) -> None:
    from energy.store import list_balances, load_file

    folder, oktmo, name = DEMO_BALANCES
    engine = _engine(config)
    have = {(b["territory_oktmo"], b["year"]) for b in list_balances(engine) if b["kind"] == "actual"}
    for path in sorted((config.demo_data / folder).glob("balance*.xlsx")):
        year = int(path.stem.removeprefix("balance"))
        if (oktmo, year) in have:
            continue
        report = load_file(engine, path, oktmo, _actor(), name=name)
        click.echo(f"fuel and energy balance {name} {report['year']}: {report['sheets']} carrier sheets, "
                   f"{report['form_values']:,} form values, {len(report['defects'])} defects reported")
    if have:
        click.echo(f"fuel and energy balances of {name}: {len(have)} already loaded")


@load.command("feb")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--territory", required=True, help="OKTMO of the territory the balance is of")
@click.option("--name", default=None, help="Name of the territory (when it is not among the loaded territories)")
@click.pass_obj
def load_feb(config: Config, path: str, territory: str, name: str | None) -> None:
    """Load a fuel and energy balance workbook (Order 1169 layout, one sheet per carrier with its forms)."""
    from energy.store import load_file

    report = load_file(_engine(config), path, territory, _actor(), name=name)
    click.echo(f"balance {report['balance_id']} ({report['year']}): {report['sheets']} carrier sheets, forms "
               f"{', '.join(report['forms'])}; {len(report['defects'])} defects:")
    for defect in report["defects"]:
        click.echo(f"  {defect}")


@load.command("rosstat")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map", "mappings", multiple=True, metavar="NAME=CODE",
              help="CDT indicator code for an indicator of the file (its name as written); default: bdmo_<name>.")
@click.option("--skip-unknown", is_flag=True,
              help="Skip municipalities whose OKTMO is not a territory (default: refuse the whole file).")
@click.option("--value-type", type=click.Choice(["actual", "forecast", "target"]), default="actual",
              show_default=True, help="Value type of rows the file does not mark as план/прогноз.")
@click.pass_obj
def load_rosstat(config: Config, path: Path, mappings, skip_unknown: bool, value_type: str) -> None:
    """Load indicator time series from a Rosstat municipal database (БД ПМО) export, CSV or XLSX."""
    from planning.series_store import import_series

    report = import_series(_engine(config), path, _actor(), mapping=_name_assignments(mappings),
                           value_type=value_type, skip_unknown=skip_unknown)
    years = "-".join(str(y) for y in report["years"]) if report["years"] else "none"
    click.echo(f"{report['file']} ({report['layout']} layout): {report['indicators']} indicators "
               f"({len(report['indicators_created'])} new), {report['territories']} territories, years {years}; "
               f"values {report['values_inserted']} inserted, {report['values_updated']} updated, "
               f"{report['values_unchanged']} unchanged, {report['values_missing']} missing in the file")
    for name, code in report["indicator_codes"].items():
        click.echo(f"  {code} = {name}")
    if report["skipped_oktmo"]:
        click.echo(f"skipped, not among the territories: OKTMO {', '.join(report['skipped_oktmo'])}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")


def _name_assignments(pairs) -> dict[str, str]:
    """NAME=CODE pairs; split at the last '=' since an indicator's name may hold one, a code never does."""
    from layers.errors import InvalidParameterValue

    out = {}
    for pair in pairs:
        name, sep, code = pair.rpartition("=")
        if not sep or not name.strip() or not code.strip():
            raise InvalidParameterValue(f"--map '{pair}' must look like NAME=CODE")
        out[name.strip()] = code.strip()
    return out


def _analyse(config: Config, territory: str, force: bool) -> None:
    import time

    from layers.access import ANONYMOUS
    from spatial.results import refresh, stale

    engine = _engine(config)
    if not force and not stale(engine, territory):
        click.echo(f"result layers of {territory}: current")
        return
    started = time.perf_counter()
    out = refresh(engine, ANONYMOUS, territory, _actor())
    access = out["walk_access"]
    click.echo(f"result layers of {territory}: walk_access {access['buildings']:,} buildings (median 15-minute "
               f"score {access['median_score']:.0f}; not in the data: {', '.join(access['missing']) or 'none'}), "
               + ", ".join(f"service_provision {k} deficit {v['deficit']:,.0f} places" for k, v in
                           out["service_provision"].items()) + f" in {time.perf_counter() - started:.1f} s")


@main.command()
@click.option("--territory", default=DEMO_TERRITORY, show_default=True, help="OKTMO of the territory")
@click.pass_obj
def analyse(config: Config, territory: str) -> None:
    """Recompute the result layers (walk_access, service_provision) of a territory."""
    _analyse(config, territory, force=True)


@main.group(cls=CDTGroup)
def indicators() -> None:
    """The indicator registry and its values."""


@indicators.command("install")
@click.pass_obj
def indicators_install(config: Config) -> None:
    """Install (or update) the built-in indicator definitions."""
    from planning.indicators import service

    out = service.install(_engine(config), _actor())
    click.echo(f"indicator registry: {out['installed']:,} built-in definitions installed, {out['removed']} removed")


@indicators.command("compute")
@click.option("--territory", default="19000000", show_default=True, help="OKTMO (descendants included)")
@click.option("--year", type=int, help="Year of the values (default: this year)")
@click.pass_obj
def indicators_compute(config: Config, territory: str, year: int | None) -> None:
    """Compute and store every indicator of a territory and its descendants."""
    _compute_indicators(config, territory, year)


# --- reports ---------------------------------------------------------------------------------
@main.command()
@click.option("--territory", default=DEMO_TERRITORY, show_default=True, help="OKTMO of the territory")
@click.option("--year", type=int, help="Year of the indicator values (default: the latest)")
@click.option("--lang", type=click.Choice(["ru", "en"]), default="ru", show_default=True)
@click.option("--indicators", "codes", help="Comma-separated indicator codes (default: the key indicators)")
@click.option("--user", "login", help="Build with this user's access rights (default: the public tier)")
@click.option("--basemap", is_flag=True, help="Add the online base map of CDT_BASEMAP_URL (needs the network)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="HTML file to write")
@click.pass_obj
def report(config: Config, territory: str, year: int | None, lang: str, codes: str | None, login: str | None,
           basemap: bool, out: Path) -> None:
    """Write a territory's standalone HTML map report (indicators, deficits, facilities, energy balance)."""
    from sqlalchemy import text

    from geoserver_app.reports import build_report
    from layers.access import ANONYMOUS
    from layers.accounts import principal_for_user
    from layers.errors import InvalidParameterValue, NotFound

    engine = _engine(config)
    who = ANONYMOUS
    if login:
        with engine.connect() as conn:
            uid = conn.execute(text("SELECT id FROM cdt.users WHERE login = :l"), {"l": login}).scalar()
            who = principal_for_user(conn, uid) if uid is not None else None
        if who is None:
            raise NotFound(f"no active user '{login}'")
    if basemap and not config.basemap_url:
        raise InvalidParameterValue("--basemap: CDT_BASEMAP_URL is not set")
    page = build_report(engine, who, territory, year, [c.strip() for c in codes.split(",") if c.strip()]
                        if codes else None, lang, config.basemap_url if basemap else None,
                        config.basemap_attribution or None)
    out.write_text(page, encoding="utf-8")
    click.echo(f"{out} ({out.stat().st_size / 1024:,.0f} KiB)")


# --- accounts --------------------------------------------------------------------------------
@main.group(cls=CDTGroup)
def users() -> None:
    """Accounts: users, their grants (a role over a territory), API tokens."""


def _read_password(from_stdin: bool) -> str:
    """The first line of stdin, or (interactively) a hidden prompt asked twice; never a command argument."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _audited(conn, action: str, target: str, detail: dict | None = None) -> None:
    from layers.accounts import audit

    audit(conn, _actor(), action, "ok", target=target, detail=detail)


password_stdin_option = click.option("--password-stdin", is_flag=True,
                                     help="Read the password from the first line of stdin (else: a prompt).")
no_password_option = click.option("--no-password", is_flag=True,
                                  help="No password: the user signs in with API tokens only.")


@users.command("add")
@click.argument("login")
@click.option("--name", "display_name", help="Display name.")
@click.option("--organisation", help="Organisation (ministry, administration, enterprise ...).")
@password_stdin_option
@no_password_option
@click.option("--role", help="Grant this role: federal, regional, municipal, agency, analyst, enterprise.")
@click.option("--territory", help="OKTMO of the grant's territory (regional, municipal, agency, analyst).")
@click.option("--sector", help="Sector of an agency grant (energy, education, health ...).")
@click.pass_obj
def users_add(config: Config, login: str, display_name, organisation, password_stdin: bool, no_password: bool, role,
              territory, sector) -> None:
    """Create a user, with one grant when --role is given."""
    from layers import accounts

    if password_stdin and no_password:
        raise click.UsageError("--password-stdin and --no-password exclude each other")
    if (territory or sector) and not role:
        raise click.UsageError("--territory and --sector belong to a --role")
    if role:
        accounts.check_grant(role, territory, sector)
    password = None if no_password else _read_password(password_stdin)
    with _engine(config).begin() as conn:
        accounts.create_user(conn, login, password, display_name, organisation)
        _audited(conn, "users.add", f"user:{login}")
        if role:
            accounts.grant(conn, login, role, territory, sector)
            _audited(conn, "users.grant", f"user:{login}", {"role": role, "territory": territory, "sector": sector})
    click.echo(f"user {login} created" + (f" as {_grant_text(role, territory, sector)}" if role else "")
               + ("" if password is not None else " (no password: tokens only)"))


def _grant_text(role: str, territory: str | None, sector: str | None) -> str:
    return role + (f" of {territory}" if territory else "") + (f" ({sector})" if sector else "")


@users.command("passwd")
@click.argument("login")
@password_stdin_option
@no_password_option
@click.pass_obj
def users_passwd(config: Config, login: str, password_stdin: bool, no_password: bool) -> None:
    """Set (or with --no-password remove) a user's password."""
    from layers import accounts

    if password_stdin and no_password:
        raise click.UsageError("--password-stdin and --no-password exclude each other")
    password = None if no_password else _read_password(password_stdin)
    with _engine(config).begin() as conn:
        accounts.set_password(conn, login, password)
        _audited(conn, "users.passwd", f"user:{login}")
    click.echo(f"password of {login} {'set' if password is not None else 'removed'}")


@users.command("grant")
@click.argument("login")
@click.argument("role")
@click.option("--territory", help="OKTMO of the territory (regional, municipal, agency, analyst).")
@click.option("--sector", help="Sector of an agency grant (energy, education, health ...).")
@click.pass_obj
def users_grant(config: Config, login: str, role: str, territory, sector) -> None:
    """Give LOGIN the ROLE (over a territory and everything in it)."""
    from layers import accounts

    with _engine(config).begin() as conn:
        accounts.grant(conn, login, role, territory, sector)
        _audited(conn, "users.grant", f"user:{login}", {"role": role, "territory": territory, "sector": sector})
    click.echo(f"{login}: {_grant_text(role, territory, sector)}")


@users.command("revoke")
@click.argument("login")
@click.argument("role")
@click.option("--territory", help="Only the grant over this OKTMO (default: every grant of the role).")
@click.pass_obj
def users_revoke(config: Config, login: str, role: str, territory) -> None:
    """Take ROLE from LOGIN."""
    from layers import accounts

    with _engine(config).begin() as conn:
        gone = accounts.revoke(conn, login, role, territory)
        _audited(conn, "users.revoke", f"user:{login}", {"role": role, "territory": territory})
    click.echo(f"{login}: {gone} {role} grant{'s' if gone != 1 else ''} revoked")


@users.command("token")
@click.argument("login")
@click.option("--name", default="cli", show_default=True, help="What the token is for (QGIS, a script ...).")
@click.pass_obj
def users_token(config: Config, login: str, name: str) -> None:
    """Make an API token for LOGIN and print it (this is the only time it is shown)."""
    from layers import accounts

    with _engine(config).begin() as conn:
        issued = accounts.issue_token(conn, login, name)
        _audited(conn, "token.create", f"token/{issued.id}", {"login": login, "name": name})
    click.echo(f"token {issued.id} ({name}) for {login}; it is shown once, use it as "
               "'Authorization: Bearer <token>':", err=True)
    click.echo(issued.token)


@users.command("revoke-token")
@click.argument("token_id", type=int)
@click.pass_obj
def users_revoke_token(config: Config, token_id: int) -> None:
    """Revoke the API token TOKEN_ID (see `cdt users tokens`)."""
    from layers import accounts

    with _engine(config).begin() as conn:
        accounts.revoke_token(conn, token_id)
        _audited(conn, "token.revoke", f"token/{token_id}")
    click.echo(f"token {token_id} revoked")


@users.command("tokens")
@click.argument("login", required=False)
@click.pass_obj
def users_tokens(config: Config, login) -> None:
    """List API tokens (of LOGIN, or everybody's); never their secrets."""
    from layers import accounts

    with _engine(config).connect() as conn:
        rows = accounts.list_tokens(conn, login)
    for r in rows:
        state = f"revoked {r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "live"
        used = f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "never"
        click.echo(f"{r['id']:>6}  {r['login']:<20} {r['name'] or '':<16} created {r['created_at']:%Y-%m-%d %H:%M}"
                   f"  used {used}  {state}")


@users.command("list")
@click.pass_obj
def users_list(config: Config) -> None:
    """List users with their grants."""
    from layers import accounts

    with _engine(config).connect() as conn:
        rows = accounts.list_users(conn)
    for r in rows:
        flags = [] if r["active"] else ["inactive"]
        if not r["has_password"]:
            flags.append("no password")
        click.echo(f"{r['login']:<20} {', '.join(r['grants']) or 'citizen':<32} {r['tokens']} token(s)  "
                   f"{r['display_name'] or ''}{' · ' + r['organisation'] if r['organisation'] else ''}"
                   f"{'  [' + ', '.join(flags) + ']' if flags else ''}")


@users.command("telegram-code")
@click.argument("login")
@click.pass_obj
def users_telegram_code(config: Config, login: str) -> None:
    """Print a one-time code that links a Telegram chat to LOGIN (send `/link CODE` to the bot; 10 minutes)."""
    from geoserver_app.bot import linking

    with _engine(config).begin() as conn:
        issued = linking.issue_code_for_login(conn, login)
        _audited(conn, "telegram.code", f"user:{login}")
    click.echo(f"send '/link {issued.code}' to the CDT bot before {issued.expires_at:%H:%M %Z} (valid once):",
               err=True)
    click.echo(issued.code)


# --- serving ---------------------------------------------------------------------------------
@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option("--workers", type=int, default=None)
@click.pass_obj
def serve(config: Config, host, port, workers) -> None:
    """Serve the platform with gunicorn."""
    from geoserver_app.embedded_pg import database_url

    env = dict(os.environ, CDT_DATABASE_URL=database_url(config))
    bind = f"{host or config.host}:{port or config.port}"
    # sync workers by default: with keep-alive (gthread) a client's connections stick to the worker that
    # accepted them and one core idles while the other queues (measured: by-id throughput halves in some
    # runs); sync spreads every request over the workers. Facing slow clients on the open internet, put a
    # buffering proxy (nginx) in front, as gunicorn advises, or set CDT_WORKER_CLASS=gthread.
    args = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers or config.workers),
            "--worker-class", config.worker_class, "--access-logfile", "-", "--timeout", "120"]
    if config.worker_class == "gthread":
        args += ["--threads", str(config.threads)]
    args.append("geoserver_app.wsgi:app")
    click.echo(f"CDT serving on http://{bind}")
    os.execve(sys.executable, args, env)


@main.command()
@click.pass_obj
def bot(config: Config) -> None:
    """Run the Telegram bot (long polling) with the token in CDT_TELEGRAM_TOKEN, until Ctrl-C."""
    if not config.telegram_token:
        click.secho("error: CDT_TELEGRAM_TOKEN is not set: get a token from @BotFather and export it "
                    "(CDT_TELEGRAM_BASE_URL for a self-hosted Bot API server)", fg="red", err=True)
        sys.exit(2)
    from geoserver_app.bot.app import run

    click.echo("CDT bot: polling for updates (Ctrl-C stops)", err=True)
    run(_engine(config), config.telegram_token, config.telegram_base_url)


if __name__ == "__main__":
    main()
