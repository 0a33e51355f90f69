"""WSGI entry point for gunicorn: `gunicorn geoserver_app.wsgi:app`."""

from geoserver_app.app import create_app

app = create_app()
