"""The `cdt` command line against a real database."""

from click.testing import CliRunner

from geoserver_app.cli import main


def test_db_status_and_url(db_url):
    runner = CliRunner()
    result = runner.invoke(main, ["db", "status"], env={"CDT_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "PostGIS 3" in result.output and "head" in result.output and "run `cdt db migrate`" not in result.output
    result = runner.invoke(main, ["db", "url"], env={"CDT_DATABASE_URL": db_url})
    assert result.output.strip().startswith("postgresql://")


def test_migrate_then_load_territories_and_a_file(make_database, data_dir, tmp_path):
    url = make_database(migrated=False)
    runner = CliRunner()
    env = {"CDT_DATABASE_URL": url}
    assert runner.invoke(main, ["db", "migrate"], env=env).exit_code == 0
    result = runner.invoke(main, ["load", "territories", "19701000", "--boundary",
                                  f"19701000={data_dir / 'vologda' / 'boundaries.parquet'}"], env=env)
    assert result.exit_code == 0, result.output
    assert "2 loaded" in result.output
    result = runner.invoke(main, ["load", "file", str(data_dir / "vologda" / "kindergarten.parquet"),
                                  "--layer", "facilities", "--set", "type_code=kindergarten",
                                  "--map", "capacity=capacity", "--map", "name=name"], env=env)
    assert result.exit_code == 0, result.output
    assert "120 loaded" in result.output


def test_bad_input_exits_2_with_a_clear_message(db_url, data_dir):
    result = CliRunner().invoke(main, ["load", "file", str(data_dir / "vologda" / "school.parquet"),
                                       "--layer", "facilities", "--map", "capacity=places"],
                                env={"CDT_DATABASE_URL": db_url})
    assert result.exit_code == 2
    assert "places" in result.output and "not in the file" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["load", "file", "nowhere.gpkg", "--layer", "buildings"],
                                env={"CDT_DATABASE_URL": db_url})
    assert result.exit_code == 2 and "no such file" in result.output
