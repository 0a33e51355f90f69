"""HTTP layer of CDT: Flask app factory, OGC API, REST, HTML, config and CLI."""
